"""The core never imports a platform SDK: import every inbox module with the SDKs blocked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE = r"""
import importlib, pkgutil, sys

class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("telegram", "discord", "tweepy"):
            raise ImportError(f"platform SDK imported: {name}")
        return None

sys.meta_path.insert(0, Block())
import inbox
names = [m.name for m in pkgutil.walk_packages(inbox.__path__, "inbox.")]
for name in names:
    importlib.import_module(name)
print(len(names))
"""


def test_inbox_imports_no_platform_sdk() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.strip()) >= 20  # it really walked the package


def test_the_block_really_blocks() -> None:
    probe = PROBE.replace("import inbox\n", "import telegram\nimport inbox\n")
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode != 0 and "platform SDK imported: telegram" in done.stderr
