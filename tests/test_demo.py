"""``inbox demo --script`` (what ``make demo`` does without a terminal) plays the crisis end to end.

It runs in a subprocess, as a user runs it: emulated Telegram, X and Discord, the contact form and a
mailbox on 127.0.0.1, the real connectors and SDKs, the real runtime on a clock 240 times faster than
real time. The transcript and the summary must show the product working from both sides.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import pytest

from inbox.demo import wants_script
from inbox.demo.scenario import HOSTILE_VISIBLE

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def scripted() -> subprocess.CompletedProcess[str]:
    """One scripted demo run (about 13 s), shared by the tests below."""
    return subprocess.run(
        [sys.executable, "-m", "inbox.cli.main", "demo", "--script", "--speed", "240"],
        cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, check=False,
    )


def test_the_script_runs_to_the_end_and_every_check_passes(
    scripted: subprocess.CompletedProcess[str],
) -> None:
    assert scripted.returncode == 0, scripted.stdout[-3000:] + scripted.stderr[-3000:]
    out = scripted.stdout
    assert "=== Summary:" in out
    assert "FAIL" not in out
    assert "ok    the bot answered every command" in out


def test_cards_reach_the_telegram_team_chat(scripted: subprocess.CompletedProcess[str]) -> None:
    out = scripted.stdout
    cards = re.findall(r"team chat +🆕 New conversation\n +#(\d+) \[normal\] open · (\w+)/(\w+)", out)
    platforms = {platform for _, platform, _ in cards}
    assert {"x", "telegram", "discord", "website"} <= platforms
    assert "buttons: [1] Take  [2] Snooze 1h  [3] Escalate  [4] Resolve  [5] Show" in out
    assert re.search(r"cards for new conversations reached the Telegram team chat \((\d+)\)", out)


def test_replies_reach_the_emulated_customers(scripted: subprocess.CompletedProcess[str]) -> None:
    out = scripted.stdout
    # Indonesian on Telegram, typed by budi in the team group, delivered through the outbox
    assert "→ Telegram   to Pak Hadi: Selamat pagi Pak Hadi, mohon maaf atas kendalanya." in out
    # a template (lead-made, placeholders filled) as a reply post on X, and a press statement
    # (it answers the thread's latest post: rina's own, or devtom's in her thread, whichever came last)
    assert re.search(r"→ X +reply to @(rina_k|devtom): Hi Rina K\., yes: card payments have been", out)
    assert "- Alice" in out
    assert "→ X          reply to @newsdesk_id: Yes: between 08:50 and 09:40 WIB" in out
    assert "→ X DM       to @kopi_lover: Halo Kak" in out
    assert "→ Discord    to dana: Sorry about that, Dana" in out
    assert "→ Discord    to siti: Halo Kak Siti" in out
    assert "→ email      to ayu@example.org: [#" in out
    summary = re.search(
        r"Replies delivered to the emulated customers: (\d+) \((.*?)\); failed deliveries: (\d+)", out
    )
    assert summary is not None
    counts = dict(part.rsplit(" ", 1) for part in summary.group(2).split(", "))
    assert int(counts["Telegram"]) >= 1 and int(counts["X"]) >= 3 and int(counts["Discord"]) >= 2
    assert int(counts["email"]) >= 1 and summary.group(3) == "0"


def test_commands_below_the_role_or_from_strangers_are_refused(
    scripted: subprocess.CompletedProcess[str],
) -> None:
    out = scripted.stdout
    assert "bot → budi   ⚠️ /template add needs the lead role; you are agent." in out
    assert "bot → rudi   ⚠️ You are not on this team, so I cannot run commands for you." in out
    assert "member:budi: /template add (role)" in out
    assert re.search(r"unknown:telegram:\d+: /resolve \(not_member\)", out)


def test_a_button_press_runs_as_the_member_who_pressed(scripted: subprocess.CompletedProcess[str]) -> None:
    out = scripted.stdout
    press = re.search(r"budi>\s+\(presses \[Take\] under the card of #(\d+)\)", out)
    assert press is not None
    assert f"bot → budi   (pop-up) #{press.group(1)} assigned to budi." in out


def test_sla_and_the_team_chat_budget(scripted: subprocess.CompletedProcess[str]) -> None:
    out = scripted.stdout
    assert "⏰ SLA warning: first response of #" in out
    assert "🚨 SLA breached: first response of #" in out
    assert "URGENT Escalation step 2" in out and "@alice" in out  # the ladder reaches the admins
    assert "📋 Digest" in out  # the spike of mentions is folded, not flooded
    budget = re.search(
        r"notices are budgeted at (\d+) per minute; busiest minute \d\d:\d\d sent (\d+) notices", out
    )
    assert budget is not None and int(budget.group(2)) <= int(budget.group(1))


def test_hostile_text_arrives_verbatim_and_cannot_touch_the_terminal(
    scripted: subprocess.CompletedProcess[str],
) -> None:
    out = scripted.stdout
    assert "Hostile customer text stored verbatim: yes; shown verbatim in the team chat: yes." in out
    assert f"“{HOSTILE_VISIBLE} \\u202eevil \\u001b[31mred”" in out  # the card, controls shown escaped
    assert "\x1b" not in out and "\u202e" not in out


def test_everything_is_cleaned_up(scripted: subprocess.CompletedProcess[str]) -> None:
    found = re.search(r"Database and log: (\S+) \(removed", scripted.stdout)
    assert found is not None
    assert not Path(found.group(1)).exists()


def test_without_a_terminal_the_demo_is_scripted() -> None:
    assert wants_script(False, io.StringIO())  # a pipe or /dev/null: never wait for a person
    assert wants_script(True, io.StringIO())

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert not wants_script(False, Tty())
    assert wants_script(True, Tty())
