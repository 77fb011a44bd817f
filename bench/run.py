"""``python -m bench``: run the scenarios on SQLite and/or PostgreSQL, print a table, write the JSON."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import shutil
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from bench.common import SEED, SIZES, Result, describe_machine, failed, log, machine
from bench.databases import postgres_admin_url, postgres_version
from bench.env import BenchEnv
from inbox.clock import SystemClock, isoformat_utc

SCENARIOS: Final = (
    ("1", "ingest", "bench.s1_ingest"),
    ("2", "commands", "bench.s2_commands"),
    ("3", "timers", "bench.s3_timers"),
    ("4", "report", "bench.s4_report"),
    ("5", "spike", "bench.s5_spike"),
    ("6", "memory", "bench.s6_memory"),
)
DEFAULT_OUT: Final = Path(__file__).parent / "results" / "latest.json"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="Saluran benchmarks (docs/benchmarks.md)"
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes (same as --size quick)")
    parser.add_argument("--size", choices=sorted(SIZES), default=None, help="full (default), quick or tiny")
    parser.add_argument(
        "--db",
        choices=("sqlite", "postgres", "both"),
        default="both",
        help="which database(s) to run on (default: both)",
    )
    parser.add_argument(
        "--only", default="", help="comma-separated scenarios by number or name, e.g. 1,timers"
    )
    parser.add_argument(
        "--seed", type=int, default=SEED, help=f"random seed (default {SEED}, keep it to compare)"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results file")
    parser.add_argument(
        "--postgres-url",
        default=None,
        help="PostgreSQL server for scratch databases (default: $INBOX_BENCH_POSTGRES_URL, "
        "$INBOX_TEST_POSTGRES_URL, or postgres@127.0.0.1:5432)",
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the records of --out for scenarios and databases not run now",
    )
    parser.add_argument(
        "--table", type=Path, default=None, metavar="JSON", help="only print the table of a results file"
    )
    parser.add_argument(
        "--workdir", type=Path, default=None, help="where SQLite files go (default: a temp dir)"
    )
    return parser.parse_args(argv)


def selected(only: str) -> list[tuple[str, str, str]]:
    """The scenarios ``--only`` names (all when empty)."""
    wanted = {w.strip().lower() for w in only.split(",") if w.strip()}
    if not wanted:
        return list(SCENARIOS)
    chosen = [s for s in SCENARIOS if s[0] in wanted or s[1] in wanted]
    unknown = wanted - {s[0] for s in chosen} - {s[1] for s in chosen}
    if unknown:
        raise SystemExit(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    return chosen


def main(argv: Sequence[str] | None = None) -> int:
    """Run, print, write; the exit code is 0 unless a scenario crashed (missed goals are not errors)."""
    args = parse_args(argv)
    if args.table is not None:
        document = json.loads(args.table.read_text(encoding="utf-8"))
        print(render_table(document["results"]))
        print(f"\nMachine: {describe_machine(document['machine'])}")
        return 0
    sizes = SIZES[args.size or ("quick" if args.quick else "full")]
    backends = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    admin = postgres_admin_url(args.postgres_url)
    pg_version = asyncio.run(postgres_version(admin)) if "postgres" in backends else None
    notes: list[str] = []
    if "postgres" in backends and pg_version is None:
        notes.append(
            f"PostgreSQL at {admin.split('@')[-1]} could not be reached: PostgreSQL runs were skipped"
        )
        log(notes[-1])
        backends.remove("postgres")
    info = machine(pg_version)
    log(f"machine: {describe_machine(info)}; sizes: {sizes.name}; seed {args.seed}")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="saluran-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    results: list[Result] = []
    crashed = 0
    started = time.perf_counter()
    try:
        for number, name, module_name in selected(args.only):
            for backend in backends:
                env = BenchEnv(backend, sizes, args.seed, workdir / f"{number}-{backend}", admin)
                env.workdir.mkdir(parents=True, exist_ok=True)
                log(f"scenario {number} ({name}) on {backend}")
                began = time.perf_counter()
                try:
                    module: Any = importlib.import_module(module_name)
                    found: list[Result] = asyncio.run(module.run(env))
                except Exception as exc:
                    crashed += 1
                    traceback.print_exc()
                    found = [failed(f"{number}-{name}", "error", name, f"{type(exc).__name__}: {exc}")]
                spent = time.perf_counter() - began
                for result in found:
                    result.database, result.seconds = backend, spent
                results.extend(found)
                log(f"scenario {number} ({name}) on {backend}: {spent:.1f}s")
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    document = {
        "generated_at": isoformat_utc(SystemClock().now()),
        "size": sizes.name,
        "seed": args.seed,
        "databases": backends,
        "machine": info,
        "notes": notes,
        "seconds": round(time.perf_counter() - started, 1),
        "results": [r.as_json(info) for r in results],
    }
    if args.merge and args.out.exists():
        document = merged(json.loads(args.out.read_text(encoding="utf-8")), document)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(render_table(document["results"]))
    print(f"\nMachine: {describe_machine(info)}")
    print(f"Written to {args.out}")
    return 1 if crashed else 0


def merged(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``new`` plus the records of ``old`` for the scenarios and databases ``new`` did not run."""
    if old.get("size") != new["size"] or old.get("seed") != new["seed"]:
        raise SystemExit(
            f"cannot merge a {new['size']} run (seed {new['seed']}) into a {old.get('size')} run "
            f"(seed {old.get('seed')}): the figures would not be comparable"
        )
    ran = {(r["scenario"], r["database"]) for r in new["results"]}
    kept = [r for r in old["results"] if (r["scenario"], r["database"]) not in ran]
    order = {name: index for index, (_n, name, _module) in enumerate(SCENARIOS)}

    def key(record: dict[str, Any]) -> tuple[int, int]:
        _num, _, name = record["scenario"].partition("-")
        return order.get(name, len(order)), 0 if record["database"] == "sqlite" else 1

    results = sorted([*kept, *new["results"]], key=key)
    return {
        **new,
        "databases": sorted({*old.get("databases", []), *new["databases"]}, key=["sqlite", "postgres"].index),
        "notes": [
            *old.get("notes", []),
            *new["notes"],
            f"records of {sorted(ran)} re-run at {new['generated_at']}; the others from "
            f"{old.get('generated_at')}",
        ],
        "seconds": round(float(old.get("seconds") or 0) + float(new["seconds"]), 1),
        "results": results,
    }


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    if value == int(value) and abs(value) < 1e9:
        return f"{int(value):,}"  # counts: 429s, messages a minute
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}" if abs(value) >= 0.1 else f"{value:.2g}"


def render_table(records: Sequence[dict[str, Any]]) -> str:
    """A Markdown table of result records (``Result.as_json``), as in the README's Performance section."""
    lines = [
        "| Scenario | Measure | DB | Figure | Baseline | Ratio | Goal | Met |",
        "| --- | --- | --- | ---: | ---: | ---: | --- | --- |",
    ]
    for r in records:
        met = {True: "yes", False: "**no**", None: "-"}[r["met"]]
        figure = f"{_number(r['figure'])} {r['unit']}".strip() if r["figure"] is not None else "not measured"
        baseline = _number(r["baseline"]) if r["baseline"] is not None else "-"
        lines.append(
            f"| {r['scenario']} | {r['label']} | {r['database']} | {figure} | {baseline} | "
            f"{_number(r['ratio'])} | {r['goal'] or '-'} | {met} |"
        )
    return "\n".join(lines)
