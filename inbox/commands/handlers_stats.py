"""/stats: the response-time figures of this week, the last 7 days or today, on demand."""

from __future__ import annotations

from inbox.commands.context import CommandDeps, Context
from inbox.commands.errors import UsageError
from inbox.commands.parse import Args
from inbox.commands.registry import Cog, command
from inbox.models import Role
from inbox.reports.numbers import compute_report
from inbox.reports.period import Period, last_days, today, week_to_date
from inbox.reports.present import report_view
from inbox.views import View

PERIOD_WORDS = ("week", "7d", "today")


class StatsCommands(Cog):
    """Reports in chat: the same figures as the weekly post (text only; the chart comes with the post)."""

    def __init__(self, deps: CommandDeps) -> None:
        self.deps = deps

    @command(
        "stats", role=Role.AGENT, usage="/stats [week|7d|today]",
        summary={
            "en": "Response times, SLA compliance, volume and backlog: this week so far (default), "
                  "the last 7 days or today, compared with the period before.",
            "id": "Waktu respons, kepatuhan SLA, volume dan antrean: minggu ini sejauh ini (bawaan), "
                  "7 hari terakhir atau hari ini, dibanding periode sebelumnya.",
        },
        example="/stats 7d",
    )
    async def stats(self, ctx: Context, args: Args) -> View:
        """Compute and show the figures of the asked period."""
        word = (args.take() or "week").lower()
        args.expect_end()
        period = self._period(word, ctx)
        report = await compute_report(self.deps.db, self.deps.settings.sla.compile(), period, ctx.now())
        return report_view(report, ctx.lang)

    def _period(self, word: str, ctx: Context) -> Period:
        timezone = self.deps.settings.general.timezone
        if word in ("week", "minggu"):
            return week_to_date(ctx.now(), timezone)
        if word in ("7d", "7"):
            return last_days(ctx.now(), timezone, 7)
        if word in ("today", "hari-ini", "hariini"):
            return today(ctx.now(), timezone)
        raise UsageError("error.bad_stats_period", value=word)
