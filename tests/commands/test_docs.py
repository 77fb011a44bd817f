"""docs/commands.md stays in step with the declared commands."""

from __future__ import annotations

from pathlib import Path

from inbox.commands import CommandCore

DOC = Path(__file__).resolve().parents[2] / "docs" / "commands.md"


async def test_every_command_is_documented_with_its_usage_role_and_aliases(core: CommandCore) -> None:
    text = DOC.read_text(encoding="utf-8")
    headings = [line for line in text.splitlines() if line.startswith("### ")]
    for cmd in core.registry.all():
        spec = cmd.spec
        heading = next((h for h in headings if f"`/{spec.name}`" in h), None)
        assert heading is not None, f"/{spec.name} has no section"
        assert f"({spec.role.value}" in heading, f"/{spec.name}: role missing from its heading"
        for sub, role in spec.subcommand_roles.items():
            assert sub in heading and role.value in heading
        for part in spec.usage.split("  |  "):
            assert part.strip() in text, f"/{spec.name}: usage '{part}' not documented"
        for alias in spec.aliases:
            assert f"`/{alias}`" in text, f"/{spec.name}: alias /{alias} not documented"
        assert spec.example in text, f"/{spec.name}: no example"
