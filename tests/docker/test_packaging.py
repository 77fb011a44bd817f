"""What the Docker image relies on: the entrypoint script, and data files shipped in the package."""

from __future__ import annotations

import fnmatch
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"
INBOX_BIN = str(Path(sys.executable).parent / "inbox")


def entrypoint(*args: str, config: Path, **kw: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "INBOX_CONFIG": str(config), "INBOX_BIN": INBOX_BIN}
    return subprocess.run(
        ["sh", str(ENTRYPOINT), *args], env=env, capture_output=True, text=True, timeout=60, check=False, **kw
    )  # type: ignore[call-overload]


def write_config(tmp_path: Path, extra: str = "") -> Path:
    config = tmp_path / "inbox.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "d.db"}"\n{extra}')
    return config


def test_entrypoint_refuses_a_missing_config(tmp_path: Path) -> None:
    done = entrypoint("run", config=tmp_path / "missing.toml")
    assert done.returncode == 2 and "no config file" in done.stderr


def test_entrypoint_refuses_a_bad_config(tmp_path: Path) -> None:
    config = write_config(tmp_path, "[general]\ntimezone = 'Nowhere/Land'\n")
    done = entrypoint("run", config=config)
    assert done.returncode == 2 and "general.timezone" in done.stderr


def test_entrypoint_passes_other_commands_through(tmp_path: Path) -> None:
    done = entrypoint("db", "current", config=write_config(tmp_path))
    assert done.returncode == 0 and "current: none" in done.stdout


def test_entrypoint_migrates_then_runs_until_sigterm(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    env = {**os.environ, "INBOX_CONFIG": str(config), "INBOX_BIN": INBOX_BIN}
    proc = subprocess.Popen(
        ["sh", str(ENTRYPOINT)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout or ()], daemon=True).start()
    try:
        # `inbox run` logs "running:" once its signal handlers are in place: a SIGTERM sent earlier
        # would reach a process that cannot stop cleanly yet (a fixed sleep raced with slow starts).
        deadline = time.monotonic() + 60
        seen: list[str] = []
        while time.monotonic() < deadline and not any("running:" in line for line in seen):
            try:
                seen.append(lines.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        assert any("running:" in line for line in seen), "inbox run did not start:\n" + "".join(seen)
        done = subprocess.run(
            [INBOX_BIN, "-c", str(config), "db", "current"], capture_output=True, text=True, check=False
        )
        assert done.returncode == 0 and "current: none" not in done.stdout, "the entrypoint did not migrate"
        proc.send_signal(signal.SIGTERM)  # `exec inbox run` replaced the shell: the signal reaches inbox
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_package_data_ships_every_data_file() -> None:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    missing = []
    for package in ("inbox", "migrations", "connectors"):
        for path in (ROOT / package).rglob("*"):
            if not path.is_file() or path.suffix in (".py", ".pyc") or "__pycache__" in path.parts:
                continue
            relative = path.relative_to(ROOT / package).as_posix()
            if not any(fnmatch.fnmatch(relative, pattern) for pattern in data.get(package, [])):
                missing.append(f"{package}/{relative}")
    assert missing == []


def test_dockerfile_copies_what_the_package_needs() -> None:
    text = (ROOT / "docker" / "Dockerfile").read_text()
    for needed in (
        "COPY pyproject.toml README.md",
        "COPY inbox",
        "COPY connectors",
        "COPY migrations",
        "USER saluran",
        "HEALTHCHECK",
        "/healthz",
        "saluran-entrypoint",
    ):
        assert needed in text
