"""The SLA state's JSON text written directly (``SlaState.dump_text``) is ``json.dumps(state.dump())``."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta, timezone

from inbox.sla.engine import SlaState, TargetClock, close, on_inbound, on_outbound, reopen, sync_pause

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _same_text(state: SlaState) -> None:
    text = state.dump_text()
    assert text == json.dumps(state.dump())
    assert SlaState.load(json.loads(text)) == state


def test_empty_and_rule_made_states_have_the_text_json_writes() -> None:
    state = SlaState()
    _same_text(state)
    on_inbound(state, T0)
    _same_text(state)
    on_outbound(state, T0 + timedelta(minutes=5))
    on_inbound(state, T0 + timedelta(minutes=10))
    sync_pause(state, "pending", None, T0 + timedelta(minutes=12))
    _same_text(state)
    sync_pause(state, "open", None, T0 + timedelta(minutes=20))
    clock = state.targets["resolution"]
    clock.warned, clock.breached_at, clock.pinged = True, T0 + timedelta(hours=1), True
    clock.steps_done = [0, 2]
    _same_text(state)
    close(state, T0 + timedelta(hours=3))
    _same_text(state)
    reopen(state, T0 + timedelta(hours=4))
    _same_text(state)


def test_unusual_values_are_written_as_json_writes_them() -> None:
    jakarta = timezone(timedelta(hours=7))
    clock = TargetClock(
        started_at=datetime(2026, 11, 2, 16, 0, tzinfo=jakarta),  # another zone: its own offset
        segments=[(datetime(2026, 11, 2, 9, 0, tzinfo=UTC), datetime(2026, 11, 2, 9, 30, 0, 5, tzinfo=UTC))],
        end="m\u00e9t \"x\"", ended_at=datetime(2026, 11, 2, 9, 30, tzinfo=UTC), steps_done=[True, 3],
    )
    state = SlaState(targets={"caf\u00e9": clock, "resolution": TargetClock.start(T0)}, replied=True)
    _same_text(state)
    # An instant equal to a UTC one but in another zone keeps its own text (the UTC texts are cached).
    state.targets["resolution"].started_at = T0.astimezone(jakarta)
    assert json.loads(state.dump_text())["targets"]["resolution"]["started_at"].endswith("+07:00")
    _same_text(state)


def test_random_states_have_the_text_json_writes() -> None:
    rng = random.Random(20261102)
    for _ in range(300):
        state = SlaState()
        at = T0 + timedelta(seconds=rng.randrange(10**6), microseconds=rng.choice([0, rng.randrange(10**6)]))
        for _ in range(rng.randrange(1, 8)):
            at += timedelta(minutes=rng.randrange(1, 300))
            step = rng.randrange(6)
            if step == 0:
                on_inbound(state, at)
            elif step == 1:
                on_outbound(state, at)
            elif step == 2:
                sync_pause(state, rng.choice(["open", "pending"]), None, at)
            elif step == 3 and state.targets:
                clock = rng.choice(list(state.targets.values()))
                clock.warned, clock.breached_at = True, at
                clock.pinged = rng.random() < 0.5
                clock.steps_done = sorted(rng.sample(range(4), rng.randrange(3)))
            elif step == 4:
                close(state, at)
            else:
                reopen(state, at)
        _same_text(state)
