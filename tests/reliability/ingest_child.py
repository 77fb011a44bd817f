"""A process that polls a jsonl channel like `inbox run` does, but stops dead inside the transaction of
its ``--block-at``-th batch (after the batch's rows were written, before the commit) and announces it
by creating ``<config dir>/blocked``. The reliability suite SIGKILLs it there.

Usage: ``python -m tests.reliability.ingest_child CONFIG CHANNEL --block-at N``
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from inbox.app import App
from inbox.ingest import IngestResult
from inbox.poller import Poller
from inbox.registry import ConnectorContext, build_connector
from inbox.settings import load_settings


async def main(config: Path, channel: str, block_at: int) -> None:
    """Poll ``channel`` until the ``block_at``-th batch, then hang inside its transaction."""
    settings = load_settings(config)
    app = await App.open(settings)
    batches = 0

    async def block(session: AsyncSession, result: IngestResult) -> None:
        nonlocal batches
        batches += 1
        if batches == block_at:
            (config.parent / "blocked").write_text(str(len(result.stored)))
            await asyncio.Event().wait()  # the batch is written but never committed

    app.ingestor.hooks.append(block)
    configured = settings.channel(channel)
    assert configured is not None
    connector = build_connector(
        configured, ConnectorContext(clock=app.clock, db=app.db, extra={"base_dir": config.parent})
    )
    assert connector.source is not None
    poller = Poller(channel, connector.source, app.ingestor, app.db, app.clock, 0.05)  # type: ignore[arg-type]
    await poller.run(asyncio.Event())


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("config", type=Path)
    parser.add_argument("channel")
    parser.add_argument("--block-at", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(main(args.config, args.channel, args.block_at))
