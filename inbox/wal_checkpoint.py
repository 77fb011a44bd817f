"""SQLite WAL checkpoints on a thread of their own, so that a committing writer does not pay for them.

In WAL mode SQLite appends each commit to the ``-wal`` file; a checkpoint copies those pages back into the
database file and syncs it. By default the connection whose commit takes the log past 1,000 pages runs
the checkpoint itself, inside that commit: a burst of timer firing or ingest then waits on the copy and
its sync every few batches (measured: about a fifth of the wall time of firing SLA timers). Here a
thread with its own connection runs a PASSIVE checkpoint every ``interval`` seconds instead (PASSIVE
never waits for, nor blocks, readers and the writer), on the other core while the process works; the
writers keep a far larger automatic threshold (``SAFETY_PAGES``) only as a safety net, should this
thread fall behind or stop.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from pathlib import Path
from typing import Final

log = logging.getLogger(__name__)

INTERVAL_S: Final = 0.25
IDLE_INTERVAL_S: Final = 2.0  # the longest wait while nothing is written
# The writers' own automatic checkpoint while this thread runs: about 40 MB of log at 4 KiB pages.
SAFETY_PAGES: Final = 10_000


class WalCheckpointer:
    """Runs ``PRAGMA wal_checkpoint(PASSIVE)`` on ``path`` every ``interval`` seconds until stopped."""

    def __init__(self, path: str, interval: float = INTERVAL_S) -> None:
        self.path = path
        self.interval = interval
        # Counters for diagnostics and tests.
        self.passes = 0
        self.skipped = 0  # ticks that found the log as the last complete checkpoint left it
        self.failures = 0
        self.pages_copied = 0
        self.last: tuple[int, int, int] | None = None  # the last checkpoint's (busy, logged, copied)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._connection: sqlite3.Connection | None = None
        self._last_error: str | None = None
        self._copied_log: tuple[int, int] | None = None  # the log file as the last complete checkpoint saw it

    @property
    def running(self) -> bool:
        """Whether the thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sqlite-wal-checkpoint", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread, wait for it (a checkpoint under way finishes first) and close its connection."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def checkpoint(self) -> tuple[int, int, int] | None:
        """One PASSIVE checkpoint now: (busy, pages in the log, pages copied), or None when there was none
        to run (no database file yet) or it failed (logged once per distinct error)."""
        try:
            connection = self._open()
            if connection is None:
                return None
            busy, logged, copied = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:
            self._failed(exc)
            return None
        self.passes += 1
        self.pages_copied += max(copied, 0)
        self._last_error = None
        self.last = (int(busy), int(logged), int(copied))
        return self.last

    def _open(self) -> sqlite3.Connection | None:
        if self._connection is None:
            if not Path(self.path).is_file():
                return None  # not created yet: opening it here would create it
            # No busy wait: a PASSIVE checkpoint that finds the log busy simply copies less this time.
            self._connection = sqlite3.connect(
                self.path, timeout=0, isolation_level=None, check_same_thread=False
            )
        return self._connection

    def _failed(self, exc: sqlite3.Error) -> None:
        self.failures += 1
        message = f"{type(exc).__name__}: {exc}"
        if message != self._last_error:
            log.warning(
                "background WAL checkpoint of %s failed (the writers' own checkpoints still run): %s",
                self.path,
                message,
            )
            self._last_error = message
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def tick(self) -> bool:
        """What the thread does every ``interval``: a checkpoint, unless the log is as the last complete
        one left it (an idle process then costs a ``stat``, not a checkpoint's locks and reads). True
        when it checkpointed."""
        seen = self._log_file()
        if seen is not None and seen == self._copied_log:
            self.skipped += 1
            return False
        done = self.checkpoint()
        # Complete: every page in the log is in the database file, so an unchanged log needs nothing.
        self._copied_log = seen if done is not None and done[1] == done[2] else None
        return True

    def _log_file(self) -> tuple[int, int] | None:
        """The ``-wal`` file's size and modification time (any commit changes them); None if absent."""
        try:
            found = os.stat(self.path + "-wal")
        except OSError:
            return None
        return found.st_size, found.st_mtime_ns

    def _run(self) -> None:
        wait = self.interval
        while not self._stop.wait(wait):
            try:
                worked = self.tick()
            except Exception:  # never end the thread: the next pass may well succeed
                log.exception("background WAL checkpoint of %s failed", self.path)
                worked = True
            # Idle, wake less and less often (each wake-up costs about 0.15 ms of CPU here); writes bring
            # it back to every ``interval``. A burst that starts meanwhile has the writers' safety net.
            wait = self.interval if worked else min(wait * 2, max(IDLE_INTERVAL_S, self.interval))
