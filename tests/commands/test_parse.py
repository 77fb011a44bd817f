"""Pure parsing: command words, arguments, IDs, points in time and template placeholders."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from inbox.commands import (
    CommandInvalid,
    UsageError,
    check_template,
    fill_template,
    parse_when,
    split_command,
)
from inbox.commands.parse import MAX_ID, Args, parse_id

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # Monday; 16:00 in Jakarta
JAKARTA = ZoneInfo("Asia/Jakarta")


@pytest.mark.parametrize(("text", "name", "rest"), [
    ("/queue", "queue", ""),
    ("/QUEUE mine", "queue", " mine"),
    ("/reply@SaluranBot 12 hi", "reply", " 12 hi"),
    ("  queue  all ", "queue", "  all"),
    ("/r #3 line one\nline two", "r", " #3 line one\nline two"),
])
def test_split_command(text: str, name: str, rest: str) -> None:
    parsed = split_command(text)
    assert parsed is not None
    assert (parsed.name, parsed.rest.rstrip()) == (name, rest.rstrip())


def test_split_command_of_nothing_is_none() -> None:
    assert split_command("   ") is None
    assert split_command("/") is None


def test_args_take_words_then_keep_the_rest_verbatim() -> None:
    args = Args(" 12   first line\n  second line ")
    assert args.take() == "12"
    assert args.rest() == "first line\n  second line"
    assert args.empty and args.take() is None


def test_args_require_and_expect_end() -> None:
    args = Args("one two")
    assert args.require("A") == "one"
    with pytest.raises(UsageError) as err:
        args.expect_end()
    assert err.value.params == {"argument": "two"}
    args.take()
    with pytest.raises(UsageError, match="missing argument: B"):
        args.require("B")


@pytest.mark.parametrize(("word", "value"), [("12", 12), ("#12", 12), (str(MAX_ID), MAX_ID)])
def test_parse_id_accepts_plain_and_hashed_numbers(word: str, value: int) -> None:
    assert parse_id(word) == value


@pytest.mark.parametrize("word", ["abc", "#", "#x1", "0", "-3", "12x", str(MAX_ID + 1), "1.5"])
def test_parse_id_refuses_anything_else(word: str) -> None:
    with pytest.raises(UsageError, match="not a valid ID"):
        parse_id(word)


@pytest.mark.parametrize(("text", "expected"), [
    ("2h", datetime(2026, 11, 2, 11, 0, tzinfo=UTC)),
    ("30m", datetime(2026, 11, 2, 9, 30, tzinfo=UTC)),
    ("1d", datetime(2026, 11, 3, 9, 0, tzinfo=UTC)),
    ("1d 12h", datetime(2026, 11, 3, 21, 0, tzinfo=UTC)),
    ("tomorrow 9:00", datetime(2026, 11, 3, 2, 0, tzinfo=UTC)),  # 09:00 WIB = 02:00 UTC
    ("Tomorrow", datetime(2026, 11, 3, 2, 0, tzinfo=UTC)),
    ("besok 13.30", datetime(2026, 11, 3, 6, 30, tzinfo=UTC)),
    ("tomorrow 5pm", datetime(2026, 11, 3, 10, 0, tzinfo=UTC)),
    ("monday 9:00", datetime(2026, 11, 9, 2, 0, tzinfo=UTC)),  # today is Monday: next week
    ("friday", datetime(2026, 11, 6, 2, 0, tzinfo=UTC)),
    ("senin 8", datetime(2026, 11, 9, 1, 0, tzinfo=UTC)),
    ("2026-12-01 10:00", datetime(2026, 12, 1, 3, 0, tzinfo=UTC)),
    ("2026-12-01", datetime(2026, 12, 1, 2, 0, tzinfo=UTC)),
    ("17:00", datetime(2026, 11, 2, 10, 0, tzinfo=UTC)),  # later today in Jakarta
    ("today 18:15", datetime(2026, 11, 2, 11, 15, tzinfo=UTC)),
])
def test_parse_when(text: str, expected: datetime) -> None:
    assert parse_when(text, NOW, JAKARTA) == expected


def test_parse_when_honours_daylight_saving() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    summer_now = datetime(2026, 7, 1, 6, 0, tzinfo=UTC)
    assert parse_when("tomorrow 9:00", summer_now, berlin) == datetime(2026, 7, 2, 7, 0, tzinfo=UTC)
    assert parse_when("tomorrow 9:00", NOW, berlin) == datetime(2026, 11, 3, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize("text", ["soon", "tomorrow 25:00", "tomorrow 9:75", "2026-02-30", "someday 9:00",
                                  "9", "13pm", "0h"])
def test_parse_when_refuses_what_it_cannot_read(text: str) -> None:
    with pytest.raises(UsageError):
        parse_when(text, NOW, JAKARTA)


@pytest.mark.parametrize("text", ["15:00", "2026-11-01 10:00", "today 8:00"])
def test_parse_when_refuses_the_past(text: str) -> None:
    with pytest.raises(CommandInvalid, match="in the past"):
        parse_when(text, NOW, JAKARTA)


def test_template_placeholders_are_checked_and_filled() -> None:
    text = "Hi {name} ({handle}), re #{id}: {{literal}} — {agent}"
    assert check_template(text) == ("name", "handle", "id", "agent")
    values = {"name": "Joe", "handle": "@joe", "id": "7", "agent": "Carol"}
    assert fill_template(text, values) == "Hi Joe (@joe), re #7: {literal} — Carol"


@pytest.mark.parametrize(("text", "message"), [
    ("Hi {customer}", "unknown placeholder {customer}"),
    ("Hi {name.__class__}", "unknown placeholder"),
    ("Hi {name!r}", "unknown placeholder {name}"),
    ("Hi {name:>20}", "unknown placeholder {name}"),
    ("Hi {0}", "unknown placeholder {0}"),
    ("Hi {name", "braces do not match"),
    ("Hi }", "braces do not match"),
    ("   ", "needs some text"),
])
def test_bad_templates_are_refused(text: str, message: str) -> None:
    with pytest.raises(CommandInvalid, match=message):
        check_template(text)
