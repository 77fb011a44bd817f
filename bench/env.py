"""What a scenario runs with: the database backend, the sizes, the seed and a work folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.common import Sizes
from bench.databases import Scratch


@dataclass
class BenchEnv:
    """One scenario run's surroundings."""

    backend: str  # "sqlite" or "postgres"
    sizes: Sizes
    seed: int
    workdir: Path
    postgres_admin: str | None = None

    async def scratch(self, name: str) -> Scratch:
        """A fresh, migrated database for this backend."""
        return await Scratch.create(self.backend, name, self.workdir, self.postgres_admin)
