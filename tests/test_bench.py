"""The benchmarks keep working: every scenario runs at a tiny size on each database (figures not asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench.common import Goal, Result, percentile
from bench.data import inbound_batches
from bench.databases import bench_config
from bench.run import merged, render_table, selected
from bench.s6_memory import to_toml
from tests.conftest import POSTGRES_ENV

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = {"1-ingest", "2-commands", "3-timers", "4-report", "5-spike", "6-memory"}
KEYS = {
    "scenario",
    "metric",
    "database",
    "figure",
    "unit",
    "baseline",
    "ratio",
    "goal",
    "met",
    "machine",
    "size",
}


def test_every_scenario_runs_at_a_tiny_size(backend: str, tmp_path: Path) -> None:
    out = tmp_path / "latest.json"
    env = dict(os.environ)
    if backend == "postgres":
        env["INBOX_BENCH_POSTGRES_URL"] = os.environ[POSTGRES_ENV]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--size",
            "tiny",
            "--db",
            backend,
            "--out",
            str(out),
            "--workdir",
            str(tmp_path / "work"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-5000:]
    document = json.loads(out.read_text(encoding="utf-8"))
    assert document["size"] == "tiny" and document["databases"] == [backend]
    assert document["machine"]["cores"] >= 1 and document["machine"]["sqlite"]
    results = document["results"]
    assert {r["scenario"] for r in results} == SCENARIOS
    for result in results:
        assert KEYS <= set(result), result
        assert result["database"] == backend
        assert result["figure"] is not None, result  # measured, whatever the value
    assert "| Scenario |" in done.stdout


def test_same_seed_same_events() -> None:
    end = datetime(2026, 11, 16, tzinfo=UTC)
    first, again = inbound_batches(400, 50, 7, end), inbound_batches(400, 50, 7, end)
    assert [b.events for b in first] == [b.events for b in again]
    assert sum(len(b.events) for b in first) == 400
    assert all(len({e.channel for e in b.events}) == 1 for b in first)


def test_ratio_and_goal() -> None:
    faster = Result(
        "x",
        "rate",
        "rate",
        50.0,
        "events/s",
        "higher",
        baseline=200.0,
        goal=Goal(">=", 40.0, ">= 40", min_ratio=0.3),
    )
    assert faster.ratio == 0.25 and faster.met is False  # fast enough, but not next to the baseline
    latency = Result("x", "ms", "ms", 4.0, "ms", "lower", baseline=1.0, goal=Goal("<", 5.0, "< 5 ms"))
    assert latency.ratio == 0.25 and latency.met is True
    unmeasured = Result("x", "ms", "ms", None, "ms", "lower", goal=Goal("<", 5.0, "< 5 ms"))
    assert unmeasured.met is None and "not measured" in render_table([unmeasured.as_json({})])


def test_percentile_interpolates() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([5.0], 99) == 5.0
    assert percentile([], 50) is None


def test_scenarios_are_chosen_by_number_or_name() -> None:
    assert [s[1] for s in selected("1,timers")] == ["ingest", "timers"]
    assert len(selected("")) == len(SCENARIOS)


def test_config_written_as_toml_reads_back(tmp_path: Path) -> None:
    config = bench_config("sqlite:///x.db", tmp_path, calendar=True)
    assert tomllib.loads(to_toml(config)) == config


def test_a_partial_run_merges_into_the_last_one() -> None:
    def record(scenario: str, database: str, figure: float) -> dict[str, object]:
        return {"scenario": scenario, "database": database, "figure": figure}

    old = {
        "size": "full",
        "seed": 1,
        "databases": ["sqlite", "postgres"],
        "notes": [],
        "seconds": 10,
        "generated_at": "then",
        "results": [
            record("1-ingest", "sqlite", 1.0),
            record("5-spike", "sqlite", 2.0),
            record("5-spike", "postgres", 3.0),
        ],
    }
    new = {
        "size": "full",
        "seed": 1,
        "databases": ["sqlite"],
        "notes": [],
        "seconds": 5,
        "generated_at": "now",
        "results": [record("5-spike", "sqlite", 9.0)],
    }
    result = merged(old, new)
    assert [(r["scenario"], r["database"], r["figure"]) for r in result["results"]] == [
        ("1-ingest", "sqlite", 1.0),
        ("5-spike", "sqlite", 9.0),
        ("5-spike", "postgres", 3.0),
    ]
    assert result["databases"] == ["sqlite", "postgres"] and result["seconds"] == 15
    with pytest.raises(SystemExit):
        merged({**old, "size": "quick"}, new)
