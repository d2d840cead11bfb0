"""Charts for admins, rendered as PNG: `/stats` sends one of the last 30 days.

matplotlib is imported inside the renderer, not at module level: the engine imports
this module, and matplotlib (with numpy's plotting stack behind it) would add its
import time to every start-up even where no one asks for a chart. Rendering uses the
Agg canvas on a `Figure` of its own (no pyplot, so no global figure state and no GUI
backend: safe off the main thread and on a headless server), and runs in a worker
thread so the event loop keeps answering messages meanwhile.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Sequence

from core.storage.stats import DailyCount

WIDTH_PX = 800
HEIGHT_PX = 500
DPI = 100
MESSAGES_COLOUR = "#4c72b0"
USERS_COLOUR = "#dd8452"


async def daily_activity_png(series: Sequence[DailyCount]) -> bytes:
    """A PNG (`WIDTH_PX` x `HEIGHT_PX`) of messages and active users per day, in a thread."""
    return await asyncio.to_thread(render_daily_activity, list(series))


def render_daily_activity(series: Sequence[DailyCount]) -> bytes:
    """Two bar panels sharing the day axis: messages per day above, active users below.

    Blocking (CPU-bound, about 100 ms); call `daily_activity_png` from async code.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    top, bottom = figure.subplots(2, 1, sharex=True)
    positions = list(range(len(series)))
    panels = (
        (top, [d.messages for d in series], "Messages", MESSAGES_COLOUR),
        (bottom, [d.active_users for d in series], "Active users", USERS_COLOUR),
    )
    for axes, values, label, colour in panels:
        axes.bar(positions, values, color=colour, width=0.8)
        axes.set_ylabel(label)
        axes.set_ylim(0, max([*values, 1]) * 1.15)
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(axis="y", alpha=0.3)
        axes.spines[["top", "right"]].set_visible(False)
        # Numbers on the bars while they fit (a month of days, up to four digits).
        labelled = len(series) <= 31 and max([*values, 0]) < 10_000
        for position, value in zip(positions, values, strict=True):
            if value and labelled:
                axes.annotate(
                    str(value),
                    (position, value),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                    xytext=(0, 1),
                    textcoords="offset points",
                )
    if series:
        # Every 5th day, counted back from today so that today is always labelled.
        ticks = positions[::-1][::5][::-1]
        bottom.set_xticks(ticks, [series[i].day.strftime("%d %b") for i in ticks])
        bottom.set_xlim(-0.6, len(series) - 0.4)
        first, last = series[0].day, series[-1].day
        title = f"Last {len(series)} days, {first:%d %b} to {last:%d %b %Y} (UTC)"
    else:
        title = "No days"
    top.set_title(title)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()
