"""Business-hours calendars: worked examples, DST edges, config errors and property tests."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inbox.sla.calendar import (
    ALWAYS_OPEN,
    BusinessCalendar,
    CalendarError,
    WeeklyPeriod,
    add_business_time,
    add_time,
    business_time_between,
    is_open,
    next_open,
    time_between,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
JAKARTA = ZoneInfo("Asia/Jakarta")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
H = timedelta(hours=1)
MIN = timedelta(minutes=1)
USEC = timedelta(microseconds=1)


def cal(zone: str, hours: dict[str, list[str]], holidays: list[str] | None = None) -> BusinessCalendar:
    return BusinessCalendar.from_config(zone, hours, holidays or [])


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def local(
    zone: ZoneInfo, year: int, month: int, day: int, hour: int = 0, minute: int = 0, fold: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=zone, fold=fold)


OFFICE = {"weekdays": ["09:00-17:00"]}


# --- worked examples -------------------------------------------------------------------------------


@pytest.mark.parametrize("zone", [JAKARTA, BERLIN])
def test_friday_afternoon_with_one_hour_target_is_due_monday_morning(zone: ZoneInfo) -> None:
    calendar = cal(zone.key, OFFICE)
    friday = local(zone, 2026, 11, 6, 16, 30)
    due = add_business_time(calendar, friday, H)
    assert due == local(zone, 2026, 11, 9, 9, 30)
    assert due.tzinfo is UTC
    assert business_time_between(calendar, friday, due) == H


def test_friday_example_across_spring_forward_in_berlin() -> None:
    # Friday 16:30 CET (15:30 UTC); the weekend holds the DST change; Monday 09:30 CEST is 07:30 UTC.
    calendar = cal("Europe/Berlin", OFFICE)
    assert add_business_time(calendar, local(BERLIN, 2024, 3, 29, 16, 30), H) == utc(2024, 4, 1, 7, 30)


def test_lunch_break_is_not_counted() -> None:
    calendar = cal("UTC", {"mon": ["09:00-12:00", "13:00-17:00"]})
    assert add_business_time(calendar, utc(2026, 11, 2, 11, 30), H) == utc(2026, 11, 2, 13, 30)
    assert business_time_between(calendar, utc(2026, 11, 2, 8), utc(2026, 11, 2, 18)) == 7 * H
    assert not is_open(calendar, utc(2026, 11, 2, 12, 30))
    assert next_open(calendar, utc(2026, 11, 2, 12, 30)) == utc(2026, 11, 2, 13)


def test_deadline_that_uses_up_a_period_is_its_closing_instant() -> None:
    calendar = cal("UTC", {"mon": ["09:00-12:00", "13:00-17:00"]})
    due = add_business_time(calendar, utc(2026, 11, 2, 11, 30), 30 * MIN)
    assert due == utc(2026, 11, 2, 12)  # not 13:00: the work is done when the period closes
    assert not is_open(calendar, due)  # periods are open at their start and closed at their end
    assert is_open(calendar, utc(2026, 11, 2, 9))


def test_touching_periods_count_as_one_stretch() -> None:
    calendar = cal("UTC", {"mon": ["09:00-12:00", "12:00-13:00"]})
    assert is_open(calendar, utc(2026, 11, 2, 12))
    assert add_business_time(calendar, utc(2026, 11, 2, 11), 2 * H) == utc(2026, 11, 2, 13)


def test_period_past_midnight_belongs_to_the_day_it_starts() -> None:
    calendar = cal("Europe/Berlin", {"fri": ["22:00-02:00"]})
    friday_late = local(BERLIN, 2026, 11, 6, 23)
    assert add_business_time(calendar, friday_late, 2 * H) == local(BERLIN, 2026, 11, 7, 1)
    assert add_business_time(calendar, friday_late, 3 * H) == local(BERLIN, 2026, 11, 7, 2)
    assert add_business_time(calendar, friday_late, 3 * H + MIN) == local(BERLIN, 2026, 11, 13, 22, 1)
    assert is_open(calendar, local(BERLIN, 2026, 11, 7, 1, 59))
    assert not is_open(calendar, local(BERLIN, 2026, 11, 7, 2))
    assert business_time_between(calendar, local(BERLIN, 2026, 11, 2), local(BERLIN, 2026, 11, 9)) == 4 * H


def test_sunday_night_period_wraps_into_monday() -> None:
    calendar = cal("UTC", {"sun": ["22:00-02:00"]})
    assert is_open(calendar, utc(2026, 11, 9, 1))  # a Monday
    assert next_open(calendar, utc(2026, 11, 9, 3)) == utc(2026, 11, 15, 22)


def test_holiday_skips_the_day() -> None:
    calendar = cal("Europe/Berlin", OFFICE, ["2026-12-25"])  # a Friday
    due = add_business_time(calendar, local(BERLIN, 2026, 12, 24, 16, 30), H)
    assert due == local(BERLIN, 2026, 12, 28, 9, 30)


def test_holiday_closes_a_past_midnight_period_starting_that_day_only() -> None:
    hours = {"fri": ["22:00-02:00"], "sat": ["10:00-12:00"]}
    friday_off = cal("UTC", hours, ["2026-11-06"])
    assert not is_open(friday_off, utc(2026, 11, 7, 1))  # Saturday 01:00 is part of Friday's period
    assert is_open(friday_off, utc(2026, 11, 7, 10))
    saturday_off = cal("UTC", hours, ["2026-11-07"])
    assert is_open(saturday_off, utc(2026, 11, 7, 1))
    assert not is_open(saturday_off, utc(2026, 11, 7, 10))


# --- DST -------------------------------------------------------------------------------------------
# Europe/Berlin 2024: clocks jump 02:00 -> 03:00 on Sun 31 March (01:00 UTC) and fall back
# 03:00 -> 02:00 on Sun 27 October (01:00 UTC). America/New_York 2024: 02:00 -> 03:00 on Sun
# 10 March (07:00 UTC), 02:00 -> 01:00 on Sun 3 November (06:00 UTC).


def sunday_time(zone: str, hours: list[str], day: date) -> timedelta:
    calendar = cal(zone, {"sun": hours})
    start = datetime.combine(day - timedelta(days=1), datetime.min.time(), UTC)
    return business_time_between(calendar, start, start + timedelta(days=3))


@pytest.mark.parametrize(
    ("zone", "hours", "day", "expected"),
    [
        # spring forward: the skipped local times do not exist, so they are not counted
        ("Europe/Berlin", ["01:30-03:30"], date(2024, 3, 31), 1 * H),
        ("Europe/Berlin", ["02:30-05:00"], date(2024, 3, 31), 2 * H),
        ("Europe/Berlin", ["02:15-02:45"], date(2024, 3, 31), timedelta(0)),
        ("Europe/Berlin", ["00:00-24:00"], date(2024, 3, 31), 23 * H),
        ("America/New_York", ["00:00-24:00"], date(2024, 3, 10), 23 * H),
        ("Australia/Lord_Howe", ["00:00-24:00"], date(2024, 10, 6), 23 * H + 30 * MIN),
        # fall back: the repeated hour really elapses twice
        ("Europe/Berlin", ["00:00-24:00"], date(2024, 10, 27), 25 * H),
        ("Europe/Berlin", ["01:00-04:00"], date(2024, 10, 27), 4 * H),
        ("Europe/Berlin", ["02:30-04:00"], date(2024, 10, 27), 2 * H + 30 * MIN),  # opens at the first 02:30
        ("Europe/Berlin", ["01:00-02:30"], date(2024, 10, 27), 90 * MIN),  # closes at the first 02:30
        ("America/New_York", ["01:30-03:00"], date(2024, 11, 3), 2 * H + 30 * MIN),
        ("Australia/Lord_Howe", ["00:00-24:00"], date(2024, 4, 7), 24 * H + 30 * MIN),
        # the same hours on an ordinary Sunday
        ("Europe/Berlin", ["01:30-03:30"], date(2024, 4, 7), 2 * H),
    ],
)
def test_open_time_on_dst_days(zone: str, hours: list[str], day: date, expected: timedelta) -> None:
    assert sunday_time(zone, hours, day) == expected


def test_period_starting_in_the_skipped_hour_opens_when_the_clocks_jump() -> None:
    calendar = cal("Europe/Berlin", {"sun": ["02:30-05:00"]})
    assert next_open(calendar, utc(2024, 3, 30)) == utc(2024, 3, 31, 1)  # 03:00 CEST
    assert is_open(calendar, utc(2024, 3, 31, 1))
    assert not is_open(calendar, utc(2024, 3, 31, 0, 59))


def test_period_wholly_inside_the_skipped_hour_never_opens_that_day() -> None:
    calendar = cal("Europe/Berlin", {"sun": ["02:15-02:45"]})
    assert next_open(calendar, utc(2024, 3, 30)) == utc(2024, 4, 7, 0, 15)  # a week later, 02:15 CEST
    assert not is_open(calendar, utc(2024, 3, 31, 1))


def test_adding_across_spring_forward_inside_a_period() -> None:
    calendar = cal("Europe/Berlin", {"sun": ["01:30-03:30"]})
    # 01:45 CET + 30 min of open time: 15 min before the jump, 15 after -> 03:15 CEST
    due = add_business_time(calendar, local(BERLIN, 2024, 3, 31, 1, 45), 30 * MIN)
    assert due == utc(2024, 3, 31, 1, 15)


def test_adding_across_fall_back_counts_the_repeated_hour() -> None:
    calendar = cal("Europe/Berlin", {"sun": ["01:00-04:00"]})
    # 01:30 CEST (23:30 UTC) + 2 h -> 01:30 UTC, which is the second 02:30 (CET)
    due = add_business_time(calendar, local(BERLIN, 2024, 10, 27, 1, 30), 2 * H)
    assert due == utc(2024, 10, 27, 1, 30)
    assert due == local(BERLIN, 2024, 10, 27, 2, 30, fold=1).astimezone(UTC)


@pytest.mark.parametrize(
    ("day", "length", "deadline"),
    [
        # Sat 22:00 EST (03:00 UTC) to Sun 06:00 EDT (10:00 UTC): one hour shorter
        (date(2024, 3, 9), 7 * H, utc(2024, 3, 10, 7)),  # 4 h later is 03:00 EDT, just after the jump
        # Sat 22:00 EDT (02:00 UTC) to Sun 06:00 EST (11:00 UTC): one hour longer
        (date(2024, 11, 2), 9 * H, utc(2024, 11, 3, 6)),  # 4 h later is the second 01:00 (EST)
    ],
)
def test_new_york_night_shift_across_dst(day: date, length: timedelta, deadline: datetime) -> None:
    calendar = cal("America/New_York", {"sat": ["22:00-06:00"]})
    start = local(NEW_YORK, day.year, day.month, day.day, 22)
    assert business_time_between(calendar, start, start + timedelta(days=1)) == length
    assert add_business_time(calendar, start, 4 * H) == deadline


def test_new_york_office_hours_ignore_the_weekend_dst_change() -> None:
    calendar = cal("America/New_York", OFFICE)
    friday = local(NEW_YORK, 2024, 3, 8, 16, 30)  # 21:30 UTC (EST)
    assert add_business_time(calendar, friday, H) == utc(2024, 3, 11, 13, 30)  # 09:30 EDT
    monday_to_monday = business_time_between(calendar, friday, friday + timedelta(days=7))
    assert monday_to_monday == 40 * H


# --- plain arithmetic, API edges -------------------------------------------------------------------


def test_zero_duration_is_start_if_open_else_next_opening() -> None:
    calendar = cal("UTC", OFFICE)
    assert add_business_time(calendar, utc(2026, 11, 2, 10), timedelta(0)) == utc(2026, 11, 2, 10)
    assert add_business_time(calendar, utc(2026, 11, 2, 17), timedelta(0)) == utc(2026, 11, 3, 9)


def test_between_is_zero_for_reversed_or_empty_ranges() -> None:
    calendar = cal("UTC", OFFICE)
    assert business_time_between(calendar, utc(2026, 11, 2, 12), utc(2026, 11, 2, 10)) == timedelta(0)
    assert business_time_between(calendar, utc(2026, 11, 2, 12), utc(2026, 11, 2, 12)) == timedelta(0)


def test_results_are_utc_for_inputs_in_any_zone() -> None:
    calendar = cal("Asia/Jakarta", OFFICE)
    start = local(NEW_YORK, 2026, 11, 2, 21)  # 02:00 UTC = 09:00 WIB Tuesday
    assert is_open(calendar, start)
    assert next_open(calendar, start).tzinfo is UTC
    assert add_business_time(calendar, start, H) == utc(2026, 11, 3, 3)


def test_naive_datetimes_and_negative_durations_are_refused() -> None:
    calendar = cal("UTC", OFFICE)
    with pytest.raises(ValueError, match="timezone-aware"):
        add_business_time(calendar, datetime(2026, 11, 2, 10), H)
    with pytest.raises(ValueError, match="timezone-aware"):
        business_time_between(calendar, utc(2026, 11, 2), datetime(2026, 11, 3))
    with pytest.raises(ValueError, match="negative"):
        add_business_time(calendar, utc(2026, 11, 2), -H)
    with pytest.raises(ValueError, match="negative"):
        add_time(None, utc(2026, 11, 2), -H)


def test_without_a_calendar_time_is_wall_clock_time() -> None:
    start = local(BERLIN, 2024, 3, 30, 23)  # the DST jump is within the next hours: no effect on UTC
    assert add_time(ALWAYS_OPEN, start, 5 * H) == utc(2024, 3, 31, 3)
    assert add_time(None, start, 5 * H).tzinfo is UTC
    # aware datetimes add in wall-clock time (23:00 + 5 h = 04:00 CEST, 4 real hours): measure real time
    assert time_between(None, start, local(BERLIN, 2024, 3, 31, 4)) == 4 * H
    assert time_between(None, start, add_time(None, start, 5 * H)) == 5 * H
    assert time_between(None, utc(2024, 3, 31), utc(2024, 3, 30)) == timedelta(0)
    calendar = cal("Europe/Berlin", OFFICE)
    assert add_time(calendar, local(BERLIN, 2024, 3, 29, 16, 30), H) == utc(2024, 4, 1, 7, 30)
    assert time_between(calendar, utc(2024, 3, 30), utc(2024, 4, 1)) == timedelta(0)


def test_a_year_of_business_time_round_trips_over_holidays_and_dst() -> None:
    # How fast this is lives in the benchmarks (the weekly report), not in a timed test.
    calendar = cal("Europe/Berlin", {"weekdays": ["09:00-12:00", "13:00-18:00"]}, ["2026-12-25"])
    start = utc(2026, 1, 1)
    due = add_business_time(calendar, start, timedelta(days=365))
    assert business_time_between(calendar, start, due) == timedelta(days=365)
    # 365 days of 8-hour weekdays is 1,095 working days: more than four calendar years later.
    assert utc(2030, 1, 1) < due < utc(2031, 1, 1)


# --- config ----------------------------------------------------------------------------------------


def test_from_config_reads_days_weekdays_overrides_and_holidays() -> None:
    calendar = BusinessCalendar.from_config(
        "Europe/Berlin",
        {"weekdays": ["09:00-17:00"], "FRI": ["09:00-15:00"], "sat": "10:00-24:00", "sun": ["22:00-00:00"]},
        ["2026-12-25", date(2026, 12, 26)],  # TOML hands over real dates
    )
    assert [str(period) for period in calendar.periods] == [
        "mon 09:00-17:00",
        "tue 09:00-17:00",
        "wed 09:00-17:00",
        "thu 09:00-17:00",
        "fri 09:00-15:00",
        "sat 10:00-24:00",
        "sun 22:00-24:00",
    ]
    assert calendar.holidays == {date(2026, 12, 25), date(2026, 12, 26)}
    assert calendar.zone == BERLIN
    closed_friday = BusinessCalendar.from_config("UTC", {"weekdays": ["09:00-17:00"], "fri": []}, [])
    assert [period.weekday for period in closed_friday.periods] == [0, 1, 2, 3]


def test_calendars_are_values() -> None:
    first = cal("UTC", {"mon": ["13:00-17:00", "09:00-12:00"]}, ["2026-12-25"])
    second = cal("UTC", {"mon": ["09:00-12:00", "13:00-17:00"]}, ["2026-12-25"])
    assert first == second
    assert hash(first) == hash(second)


@pytest.mark.parametrize(
    ("zone", "hours", "holidays", "message"),
    [
        ("UTC", {"fry": ["09:00-17:00"]}, [], "unknown day 'fry'"),
        ("UTC", {"mon": ["25:00-26:00"]}, [], "bad time '25:00'"),
        ("UTC", {"mon": ["09:75-17:00"]}, [], "bad time '09:75'"),
        ("UTC", {"mon": ["24:00-02:00"]}, [], "bad time '24:00'.*24:00 only as an end"),
        ("UTC", {"mon": ["9am-5pm"]}, [], "bad time '9am'"),
        ("UTC", {"mon": ["09:00"]}, [], "'09:00' is not a period"),
        ("UTC", {"mon": ["09:00-12:00-17:00"]}, [], "is not a period"),
        (
            "UTC",
            {"mon": ["09:00-12:00", "11:00-13:00"]},
            [],
            "periods overlap: mon 09:00-12:00 and mon 11:00-13:00",
        ),
        (
            "UTC",
            {"fri": ["22:00-02:00"], "sat": ["01:00-05:00"]},
            [],
            "overlap: fri 22:00-02:00 and sat 01:00-05:00",
        ),
        ("UTC", {"sun": ["22:00-02:00"], "mon": ["01:00-05:00"]}, [], "overlap: .*sun 22:00-02:00"),
        ("UTC", {"mon": ["09:00-09:00"]}, [], "period '09:00-09:00' is empty"),
        ("Mars/Olympus_Mons", OFFICE, [], "unknown timezone 'Mars/Olympus_Mons'"),
        ("", OFFICE, [], "unknown timezone ''"),
        ("UTC", OFFICE, ["2026-13-01"], "bad holiday date '2026-13-01'"),
        ("UTC", OFFICE, ["25/12/2026"], "bad holiday date '25/12/2026'"),
        ("UTC", {}, [], "no open periods"),
        ("UTC", {"weekdays": [], "sat": []}, [], "no open periods"),
        ("UTC", {"mon": 9}, [], "hours for mon must be a list"),
    ],
)
def test_config_errors_name_the_problem(
    zone: str, hours: dict[str, object], holidays: list[str], message: str
) -> None:
    with pytest.raises(CalendarError, match=message):
        BusinessCalendar.from_config(zone, hours, holidays)  # type: ignore[arg-type]


def test_calendar_error_is_a_value_error() -> None:
    assert issubclass(CalendarError, ValueError)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((7, 0, 60), "weekday 7"),
        ((0, 1440, 1500), "start minute"),
        ((0, 60, 60), "empty"),
        ((0, 0, 1441), "24 hours"),
    ],
)
def test_weekly_period_refuses_impossible_values(args: tuple[int, int, int], message: str) -> None:
    with pytest.raises(CalendarError, match=message):
        WeeklyPeriod(*args)


# --- property tests --------------------------------------------------------------------------------

ZONES = ["Europe/Berlin", "America/New_York", "Asia/Jakarta", "UTC", "Australia/Lord_Howe"]
SLOT = 30  # minutes; coarse on purpose, so that boundaries touch each other and hit DST changes
SLOTS_PER_DAY = 24 * 60 // SLOT
SLOTS_PER_WEEK = 7 * SLOTS_PER_DAY
FIRST = datetime(2024, 1, 1)
LAST = datetime(2030, 12, 31)


@cache
def transitions(zone_name: str) -> tuple[datetime, ...]:
    """The UTC instants in 2024-2030 at which ``zone_name`` changes its offset (found by scanning)."""
    zone = ZoneInfo(zone_name)
    found = []
    day = FIRST.replace(tzinfo=UTC)
    while day.replace(tzinfo=None) < LAST:
        following = day + timedelta(days=1)
        if day.astimezone(zone).utcoffset() != following.astimezone(zone).utcoffset():
            moment = day
            while moment.astimezone(zone).utcoffset() == day.astimezone(zone).utcoffset():
                moment += MIN
            found.append(moment)
        day = following
    return tuple(found)


@st.composite
def instants(draw: st.DrawFn, zone_name: str) -> datetime:
    """An instant in 2024-2030: arbitrary, on a quarter-hour, or within two days of a DST change."""
    changes = transitions(zone_name)
    kind = draw(st.sampled_from(["any", "quarter", "dst"] if changes else ["any", "quarter"]))
    if kind == "any":
        return draw(st.datetimes(FIRST, LAST, timezones=st.just(UTC)))
    if kind == "quarter":
        moment = draw(st.datetimes(FIRST, LAST, timezones=st.just(UTC)))
        return moment.replace(minute=moment.minute // 15 * 15, second=0, microsecond=0)
    change = draw(st.sampled_from(changes))
    return change + draw(st.integers(-192, 192)) * timedelta(minutes=15)


@st.composite
def weekly_periods(draw: st.DrawFn) -> tuple[WeeklyPeriod, ...]:
    """1-3 periods on each of some random weekdays, up to 24 h long, some past midnight, none overlapping."""
    taken = [False] * SLOTS_PER_WEEK
    periods = []
    for weekday in draw(st.lists(st.integers(0, 6), min_size=1, max_size=7, unique=True)):
        for _ in range(draw(st.integers(1, 3))):
            start = draw(st.integers(0, SLOTS_PER_DAY - 1))
            length = draw(st.integers(1, SLOTS_PER_DAY))
            slots = [(weekday * SLOTS_PER_DAY + start + i) % SLOTS_PER_WEEK for i in range(length)]
            if any(taken[slot] for slot in slots):
                continue  # the first period drawn always fits, so there is at least one
            for slot in slots:
                taken[slot] = True
            periods.append(WeeklyPeriod(weekday, start * SLOT, (start + length) * SLOT))
    return tuple(periods)


Scenario = tuple[BusinessCalendar, datetime]


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    """A random calendar and an instant; holidays fall in the weeks after the instant, so they matter."""
    zone_name = draw(st.sampled_from(ZONES))
    start = draw(instants(zone_name))
    first_day = start.astimezone(ZoneInfo(zone_name)).date()
    offsets = draw(st.frozensets(st.integers(-2, 24), max_size=6))
    holidays = frozenset(first_day + timedelta(days=n) for n in offsets)
    return BusinessCalendar(zone_name, draw(weekly_periods()), holidays), start


durations = st.one_of(
    st.timedeltas(timedelta(0), timedelta(weeks=3)),
    st.integers(0, 3 * 7 * 24 * 4).map(lambda quarters: quarters * timedelta(minutes=15)),
    st.timedeltas(timedelta(0), timedelta(minutes=5)),
)
gaps = st.one_of(
    st.timedeltas(timedelta(0), timedelta(days=3)),
    st.integers(0, 3 * 24 * 4).map(lambda quarters: quarters * timedelta(minutes=15)),
)
PROPERTY = settings(max_examples=200, deadline=None)


@PROPERTY
@given(scenarios(), durations)
def test_measuring_what_was_added_gives_the_duration_back(scenario: Scenario, duration: timedelta) -> None:
    calendar, start = scenario
    due = add_business_time(calendar, start, duration)
    assert due >= start
    assert business_time_between(calendar, start, due) == duration


@PROPERTY
@given(scenarios(), durations, durations)
def test_adding_is_monotonic_in_the_duration(scenario: Scenario, first: timedelta, second: timedelta) -> None:
    calendar, start = scenario
    shorter, longer = sorted((first, second))
    assert add_business_time(calendar, start, shorter) <= add_business_time(calendar, start, longer)


@PROPERTY
@given(scenarios(), gaps, durations)
def test_adding_is_monotonic_in_the_start(scenario: Scenario, gap: timedelta, duration: timedelta) -> None:
    calendar, start = scenario
    assert add_business_time(calendar, start, duration) <= add_business_time(calendar, start + gap, duration)


@PROPERTY
@given(scenarios(), durations)
def test_positive_deadline_is_open_time_or_a_closing_instant(scenario: Scenario, duration: timedelta) -> None:
    """For d > 0 the microsecond just before the deadline is open time.

    So the deadline lies inside an open period, or is exactly the end of one; in that case the
    calendar is closed at the deadline (periods are closed at their end), and the deadline is never
    pushed to the next opening. For d = 0 the deadline is the first open instant at or after start.
    """
    calendar, start = scenario
    due = add_business_time(calendar, start, duration)
    if duration > timedelta(0):
        assert business_time_between(calendar, due - USEC, due) == USEC
        assert is_open(calendar, due) or next_open(calendar, due) > due
    else:
        assert due == next_open(calendar, start)
        assert is_open(calendar, due)
        assert business_time_between(calendar, start, due) == timedelta(0)


@PROPERTY
@given(scenarios(), gaps, gaps)
def test_measuring_is_additive(scenario: Scenario, first_gap: timedelta, second_gap: timedelta) -> None:
    calendar, start = scenario
    middle, end = start + first_gap, start + first_gap + second_gap
    whole = business_time_between(calendar, start, end)
    assert (
        business_time_between(calendar, start, middle) + business_time_between(calendar, middle, end) == whole
    )
    assert whole <= end - start


def oracle_open_runs(
    calendar: BusinessCalendar, begin: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """Open stretches in [begin, end), minute by minute, straight from the documented rule.

    A boundary is the first instant at which the wall clock reads it or later, so an instant is open
    when the highest wall-clock reading so far lies inside a period of a non-holiday day.
    """
    zone = ZoneInfo(calendar.timezone)
    by_weekday: dict[int, list[WeeklyPeriod]] = {}
    for period in calendar.periods:
        by_weekday.setdefault(period.weekday, []).append(period)

    def open_at(wall: datetime) -> bool:
        for day in (wall.date(), wall.date() - timedelta(days=1)):
            if day in calendar.holidays:
                continue
            midnight = datetime.combine(day, datetime.min.time())
            for period in by_weekday.get(day.weekday(), []):
                if midnight + period.start_minute * MIN <= wall < midnight + period.end_minute * MIN:
                    return True
        return False

    runs: list[tuple[datetime, datetime]] = []
    highest: datetime | None = None
    moment = begin - 6 * H  # warm-up: a repeated hour is at most an hour long
    while moment < end:
        wall = moment.astimezone(zone).replace(tzinfo=None)
        highest = wall if highest is None or wall > highest else highest
        if moment >= begin and open_at(highest):
            if runs and runs[-1][1] == moment:
                runs[-1] = (runs[-1][0], moment + MIN)
            else:
                runs.append((moment, moment + MIN))
        moment += MIN
    return runs


@PROPERTY
@given(scenarios())
def test_open_time_matches_a_minute_by_minute_oracle(scenario: Scenario) -> None:
    calendar, start = scenario
    begin = start.replace(second=0, microsecond=0)
    end = begin + timedelta(days=2)
    runs = oracle_open_runs(calendar, begin, end)
    for opens, closes in runs:
        assert is_open(calendar, opens)
        assert business_time_between(calendar, opens, closes) == closes - opens
        if closes < end:
            assert not is_open(calendar, closes)
    assert business_time_between(calendar, begin, end) == sum((c - o for o, c in runs), timedelta(0))
    if runs and not is_open(calendar, begin):
        assert next_open(calendar, begin) == runs[0][0]
