"""The report chart: new conversations per day by channel, and the daily median first response against
the SLA target, as a PNG sized for a chat preview (1200 x 675 px, 16:9).

Drawn with matplotlib's object API on the Agg canvas: no display, no pyplot global state, so it is
safe in a worker thread. The median is in the time the SLA counts (business hours where the policy
has a calendar), so it is comparable with the target line. Labels follow the chat's language.
"""

from __future__ import annotations

import io
import math
from datetime import timedelta
from typing import Final

from inbox.durations import format_duration
from inbox.i18n import t
from inbox.reports.numbers import Report

WIDTH_PX: Final = 1200
HEIGHT_PX: Final = 675
DPI: Final = 100
# Colour-blind-safe (Okabe-Ito) colours, one per channel in name order.
PALETTE: Final = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
_TARGET_STYLES: Final = ("--", ":", "-.")


def render_chart(report: Report, lang: str = "en") -> bytes:
    """The chart of ``report`` as PNG bytes (about 40-70 KB)."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    days = report.daily
    labels = [t(lang, f"report.day.{d.day.weekday()}") + f"\n{d.day.day}" for d in days]
    channels = sorted({name for d in days for name in d.new_by_channel} | set(report.by_channel))
    with matplotlib.rc_context({"font.size": 14, "axes.titlesize": 17, "axes.titleweight": "bold",
                                "axes.spines.top": False, "axes.spines.right": False,
                                "legend.fontsize": 12, "legend.frameon": False}):
        figure = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI)
        FigureCanvasAgg(figure)
        volume, speed = figure.subplots(1, 2)
        positions = list(range(len(days)))
        bottom = [0] * len(days)
        for index, channel in enumerate(channels):
            heights = [d.new_by_channel.get(channel, 0) for d in days]
            volume.bar(positions, heights, bottom=bottom, label=channel, color=PALETTE[index % len(PALETTE)],
                       width=0.7)
            bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
        volume.set_title(t(lang, "report.chart.volume"))
        volume.set_xticks(positions, labels, rotation=0 if len(days) <= 8 else 60)
        volume.yaxis.get_major_locator().set_params(integer=True)
        if channels:
            volume.legend(loc="upper left")
        volume.set_ylim(0, max([*bottom, 1]) * 1.35)
        _speed_panel(speed, report, positions, labels, lang)
        last = days[-1].day.isoformat() if days else ""
        figure.suptitle(f"{report.period.label} · {days[0].day.isoformat() if days else ''} .. {last} "
                        f"({report.period.timezone})", fontsize=15)
        figure.tight_layout(rect=(0, 0, 1, 0.95))
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _speed_panel(axes: object, report: Report, positions: list[int], labels: list[str], lang: str) -> None:
    """Daily median first response (SLA time) as a line, each policy's target as a dashed line."""
    from matplotlib.axes import Axes

    assert isinstance(axes, Axes)
    medians = [d.first_response_median_sla_seconds for d in report.daily]
    known = [m for m in medians if m is not None]
    targets = report.first_response_targets
    top = max([*known, *(line.seconds for line in targets), 60.0])
    in_hours = top >= 3 * 3600
    scale = 3600.0 if in_hours else 60.0
    values = [math.nan if m is None else m / scale for m in medians]
    axes.plot(positions, values, marker="o", markersize=9, linewidth=2.5, color="#0072B2",
              label=t(lang, "report.chart.median"))
    for index, line in enumerate(targets):
        text = t(lang, "report.chart.target", policy=line.policy,
                 duration=format_duration(timedelta(seconds=line.seconds)))
        if line.business_hours:
            text += " " + t(lang, "report.chart.business")
        axes.axhline(line.seconds / scale, color="#D55E00", linewidth=2,
                     linestyle=_TARGET_STYLES[index % len(_TARGET_STYLES)], label=text)
    axes.set_title(t(lang, "report.chart.first_response"))
    axes.set_ylabel(t(lang, "report.chart.hours" if in_hours else "report.chart.minutes"))
    axes.set_xticks(positions, labels, rotation=0 if len(positions) <= 8 else 60)
    axes.set_ylim(0, top / scale * 1.6)  # room for the legend above the data
    if not known:
        axes.text(0.5, 0.5, t(lang, "report.chart.no_data"), transform=axes.transAxes, ha="center",
                  va="center", color="#555555")
    axes.legend(loc="upper left")
