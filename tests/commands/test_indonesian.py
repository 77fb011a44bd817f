"""Views rendered in Indonesian, chosen per chat (invocation) or for the whole team (settings)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.commands.conftest import NewConversation, Run


async def test_queue_card_in_indonesian(run: Run, new_conversation: NewConversation) -> None:
    conv = await new_conversation("Paket saya belum sampai")
    await run("carol", f"/tag {conv} pengiriman")
    await run("carol", f"/priority {conv} urgent")
    assert await run("carol", "/queue", language="id") == "\n".join([
        "Antrean, halaman 1",
        "",
        f"#{conv} [mendesak] terbuka · support/DM · @joe",
        '  "Paket saya belum sampai"',
        "  belum ditugaskan · label: pengiriman",
        f"  [Lihat → /show {conv}] [Ambil → /assign {conv} me] [Selesaikan → /resolve {conv}]",
    ])


async def test_confirmations_and_errors_in_indonesian(run: Run, new_conversation: NewConversation) -> None:
    conv = await new_conversation()
    assert await run("carol", f"/assign {conv} me", language="id") == (
        f"#{conv} ditugaskan ke carol.\n[Lihat → /show {conv}]")
    assert (await run("carol", f"/snooze {conv} besok 9:00", language="id")).splitlines()[0] == (
        f"#{conv} ditunda hingga 2026-11-03 09:00 WIB.")
    assert await run("carol", "/reslove 1", language="id") == (
        "Perintah /reslove tidak dikenal. Maksud Anda /resolve?")
    assert (await run("carol", "/show 99", language="id")).splitlines() == [
        "Percakapan #99 tidak ada", "Cara pakai: /show ID"]
    assert (await run("carol", f"/snooze {conv} nanti", language="id")).splitlines()[0] == (
        "'nanti' bukan waktu yang saya pahami "
        "(contoh: 2h, 30m, 1d, besok 9:00, senin 9:00, 2026-12-01 10:00)")
    await run("carol", f"/resolve {conv}")
    assert (await run("carol", f"/pending {conv}", language="id")).splitlines()[0] == (
        f"Percakapan #{conv} sudah selesai; buka lagi sebelum menandainya menunggu")
    assert (await run("carol", f"/tag {conv} a+b", language="id")).splitlines()[0] == (
        "'a+b' bukan label yang sah: pakai huruf, angka, '-', '_', ':' atau '.' (paling banyak 60)")
    assert await run("nobody", "/queue", language="id") == (
        "Anda bukan anggota tim ini, jadi saya tidak bisa menjalankan perintah untuk Anda.")


async def test_help_in_indonesian(run: Run) -> None:
    out = await run("carol", "/bantuan catatan", language="id")
    assert out == "Perintah /catatan tidak dikenal. Kirim /help untuk daftar perintah."
    assert await run("carol", "/help n", language="id") == (
        "/note ID TEXT\n  Tambahkan catatan internal; pelanggan tidak pernah melihatnya.\n  Alias: /n\n"
        "  Peran minimal: agent\n  Contoh: /note 12 Customer called, refund approved")


class TestTeamLanguage:
    """The team default from settings applies when the chat names no language."""

    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"general": {"timezone": "Asia/Jakarta", "language": "id"}}

    async def test_team_default_is_indonesian(self, run: Run, new_conversation: NewConversation) -> None:
        conv = await new_conversation()
        assert (await run("carol", f"/resolve {conv}")).splitlines()[0] == f"#{conv} selesai."
        assert (await run("carol", f"/reopen {conv}", language="en")).splitlines()[0] == f"#{conv} reopened."
        # an unsupported chat language falls back to the team default
        assert (await run("carol", "/sla", language="fr")) == (
            "Tidak ada percakapan terbuka yang punya tenggat SLA.")
