"""JSONL connector: reads neutral events appended to a file, writes replies to another file.

It lets systems without an API (or a script) feed Saluran and pick up the team's answers.
"""

from connectors.jsonl.source import JsonlSender, JsonlSource, Options, build

__all__ = ["JsonlSender", "JsonlSource", "Options", "build"]
