"""Team chat config, the teamlog connector, the paced sender, install_notifier and the notice catalogue."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert

from inbox.actions import Actions
from inbox.clock import FakeClock
from inbox.db import Database
from inbox.events import Outbound, Receipt
from inbox.i18n import CATALOGUES, LANGUAGES
from inbox.ingest import IngestHook, Ingestor
from inbox.models import Delivery
from inbox.notify import install_notifier, team_chats
from inbox.outbox import Dispatcher
from inbox.ports import Pace, Paced, RateLimited, pace_of
from inbox.registry import ConnectorContext, build_connector
from inbox.settings import ConfigError, Settings, settings_from_dict
from tests.factories import DEFAULT_CONFIG, seed
from tests.notify.conftest import OPS, TIM, Rig, team_config, team_settings

ROOT = Path(__file__).resolve().parents[2]


def test_budgets_default_to_the_hosting_platform(tmp_path: Path) -> None:
    config = team_config(tmp_path)
    config["channels"].append({"name": "dc", "type": "discord"})
    config["team_chats"].append({"name": "leads", "channel": "dc", "chat_id": "55", "budget": 4})
    chats = {c.name: c for c in team_chats(Settings.model_validate(config))}
    assert (chats["ops"].budget, chats["ops"].window, chats["ops"].reserve) == (20, timedelta(minutes=1), 4)
    assert (chats["tim"].budget, chats["tim"].window, chats["tim"].reserve) == (30, timedelta(minutes=1), 6)
    leads = chats["leads"]
    assert (leads.budget, leads.window, leads.reserve) == (4, timedelta(seconds=5), 0)
    assert (chats["ops"].lang, chats["tim"].lang, chats["ops"].chat_id) == ("en", "id", "-100123")
    assert chats["ops"].limit(urgent=False) == 15 and chats["ops"].limit(urgent=True) == 19


def test_bad_team_chats_are_refused_with_the_key_named(tmp_path: Path) -> None:
    chats = [
        {"name": "a", "channel": "fax", "chat_id": "1"},
        {"name": "b", "channel": "support", "chat_id": "2", "channels": ["support", "nope"],
         "budget": 3, "priority_reserve": 2, "language": "fr", "hears": ["cards"], "window": "0s"},
        {"name": "a", "channel": "support", "chat_id": "3"},
    ]
    with pytest.raises(ConfigError) as caught:
        settings_from_dict({**DEFAULT_CONFIG, "team_chats": chats[:2]}, environ={})
    assert caught.value.problems == [
        "team_chats[1].language: language must be 'en' (English) or 'id' (Indonesian)",
        "team_chats[1].window: '0s' must be longer than zero",
        "team_chats[1].hears: unknown notice kind(s) cards: use card, sla, failed, health, budget",
    ]
    chats[1] = {"name": "b", "channel": "support", "chat_id": "2", "channels": ["nope"], "budget": 3,
                "priority_reserve": 2}
    with pytest.raises(ConfigError) as caught:
        settings_from_dict({**DEFAULT_CONFIG, "team_chats": chats[:2]}, environ={})
    assert caught.value.problems == [
        "team_chats[0].channel: 'fax' is not a configured channel",
        "team_chats[1].channels: not configured: nope",
        "team_chats[1].priority_reserve: must leave room in the budget of 3: at most 1 (one message is "
        "kept for the digest, one for new conversations)",
    ]
    with pytest.raises(ConfigError, match="team_chats: duplicate name"):
        settings_from_dict({**DEFAULT_CONFIG, "team_chats": [chats[2], chats[2]]}, environ={})


def test_the_example_config_documents_a_team_chat_on_a_teamlog_channel() -> None:
    from inbox.settings import load_settings

    settings = load_settings(ROOT / "inbox.example.toml", environ={"EXAMPLE_SECRET": "x"})
    [chat] = team_chats(settings)
    assert chat.platform == "teamlog" and chat.destination == "team:ops"


async def test_teamlog_writes_one_json_line_per_team_notice(rig: Rig, tmp_path: Path) -> None:
    channel = rig.settings.channel("log")
    assert channel is not None
    connector = build_connector(channel, ConnectorContext(clock=rig.clock))
    assert connector.source is None and connector.sender is None and connector.team_sender is not None
    await rig.customers_write()
    dispatcher = Dispatcher(rig.db, rig.clock, rig.notifier.senders({"log": connector.team_sender}),
                            worker_id="w1")
    await dispatcher.run_once()  # team:ops has no sender in this process: its card waits
    [line] = [json.loads(x) for x in (tmp_path / "team.jsonl").read_text("utf-8").splitlines()]
    [row] = await rig.deliveries(TIM)
    assert line["delivery_id"] == row.id and line["destination"] == TIM and line["chat_id"] == "tim"
    assert line["text"] == row.payload["text"] and line["view"] == row.payload["view"]
    assert line["purpose"] == "card" and line["sent_at"] == "2026-11-02T09:00:00Z"
    assert row.id is not None and (await rig.deliveries(TIM))[0].platform_message_id == f"teamlog:{row.id}"
    # A teamlog channel passes the connector check of a real config load.
    settings_from_dict({**DEFAULT_CONFIG, "channels": [{"name": "log", "type": "teamlog"}],
                        "team_chats": [{"name": "tim", "channel": "log", "chat_id": "t"}]}, environ={})


class CountingSender:
    """Accepts everything and counts."""

    def __init__(self) -> None:
        self.count = 0

    async def send(self, outbound: Outbound) -> Receipt:
        self.count += 1
        return Receipt(str(outbound.delivery_id))


async def sent_rows(rig: Rig, destination: str, *ages: float) -> None:
    """Outbox rows to ``destination`` marked sent ``ages`` seconds ago."""
    now = rig.clock.now()
    async with rig.db.transaction() as session:
        for age in ages:
            await session.execute(insert(Delivery).values(
                destination=destination, purpose="card", payload={}, status="sent", attempts=1,
                next_attempt_at=now, created_at=now, sent_at=now - timedelta(seconds=age)))


async def test_the_paced_sender_waits_until_the_oldest_send_leaves_the_window(rig: Rig) -> None:
    inner = CountingSender()
    paced = rig.notifier.senders({"tg": inner})[OPS]
    out = Outbound(delivery_id=1, destination=OPS, purpose="card", text="x")
    await sent_rows(rig, OPS, 59, *range(18))  # 19 in the last minute
    await sent_rows(rig, OPS, 60, 61, 3600)  # older than the window: they do not count
    await sent_rows(rig, TIM, *range(30))  # another destination: does not count
    await paced.send(out)
    assert inner.count == 1
    await sent_rows(rig, OPS, 0)  # the send above, recorded by the dispatcher
    with pytest.raises(RateLimited) as limited:
        await paced.send(out)
    assert inner.count == 1
    assert limited.value.retry_after == pytest.approx(1.0)  # the send 59 s ago leaves the window in 1 s
    rig.clock.advance(timedelta(seconds=1))
    await paced.send(out)
    assert inner.count == 2


class PacedCountingSender(CountingSender):
    """A team sender whose platform takes 2 messages at once, then one per 2.5 s, in one chat."""

    pace = Pace(interval=2.5, burst=2)


async def test_the_paced_sender_keeps_to_the_pace_the_sender_declares(rig: Rig) -> None:
    assert pace_of(CountingSender()) == Pace()  # declares none: only the budget applies
    inner = PacedCountingSender()
    paced = rig.notifier.senders({"tg": inner})[OPS]
    out = Outbound(delivery_id=1, destination=OPS, purpose="card", text="x")
    await sent_rows(rig, OPS, 1, 6)  # one send in the last 5 s: the burst has room for one more
    await sent_rows(rig, TIM, 0, 0, 0)  # another destination: does not count
    await paced.send(out)
    assert inner.count == 1
    await sent_rows(rig, OPS, 0)  # the send above, recorded by the dispatcher: 2 in the last 5 s
    with pytest.raises(Paced) as limited:
        await paced.send(out)
    assert inner.count == 1 and limited.value.retry_after == pytest.approx(4.0)  # until the older leaves
    rig.clock.advance(timedelta(seconds=4))
    await paced.send(out)
    assert inner.count == 2
    await sent_rows(rig, OPS, 50, *[0.5] * 16)  # the budget is used too: the longer wait wins
    with pytest.raises(Paced) as limited:
        await paced.send(out)
    assert limited.value.retry_after == pytest.approx(10.0)  # the send 50 s ago leaves the window


async def test_install_notifier_reaches_the_ingestor(db: Database, clock: FakeClock, tmp_path: Path) -> None:
    settings = await seed(db, clock, team_settings(tmp_path))

    class FakeApp:
        def __init__(self) -> None:
            self.db, self.clock, self.settings = db, clock, settings
            self.ingest_hooks: list[IngestHook] = []
            self.ingestor = Ingestor(db, clock, hooks=self.ingest_hooks)  # keeps its own copy
            self.actions = Actions(db, clock)

    app = FakeApp()
    notifier = install_notifier(app)
    assert install_notifier.__doc__ and notifier.ingest_hook in app.ingestor.hooks
    assert app.ingest_hooks == [notifier.ingest_hook] and len(app.ingestor.hooks) == 1
    rig = Rig(db, clock, settings, notifier, app.ingestor)
    await rig.customers_write()
    assert len(await rig.deliveries(OPS)) == 1


def test_every_notice_message_the_code_names_exists_in_every_language() -> None:
    pattern = re.compile(r"""["']((?:notice|button)\.[a-z_0-9]+)["']""")
    used: set[str] = set()
    for path in [*(ROOT / "inbox" / "notify").glob("*.py"), ROOT / "inbox" / "render_text.py"]:
        used |= set(pattern.findall(path.read_text("utf-8")))
    used |= {f"notice.digest_count_{kind}" for kind in ("new", "reopened", "sla", "failed", "notice")}
    assert len(used) > 25
    for lang in LANGUAGES:
        assert sorted(used - set(CATALOGUES[lang])) == [], lang
