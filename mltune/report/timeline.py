"""The report's timeline: trials per device over time (a search on several devices), its data
first (``timeline_info``), then the drawing, as every figure of the report (``plots``)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from matplotlib.figure import Figure

from mltune.report.plots import figure


@dataclass(frozen=True)
class TimelineInfo:
    """Trials per device over time: one row per device, one bar per trial."""

    devices: list[str]  # in the order first used
    bars: list[tuple[int, float, float, str]]  # (device row, start s, end s, status)


def timeline_info(frame: pd.DataFrame) -> TimelineInfo | None:
    """The trials that trained on a known device, from the search's first start; None unless
    more than one device trained (one device's timeline says nothing the history does not)."""
    if not {"device", "start_ms", "end_ms"} <= set(frame.columns):
        return None
    known = frame[frame["device"].notna() & frame["start_ms"].notna()].sort_values("start_ms")
    devices = list(dict.fromkeys(known["device"]))
    if len(devices) < 2:
        return None
    first = float(known["start_ms"].min())
    last = float(known["end_ms"].max()) if known["end_ms"].notna().any() else first
    bars = [(devices.index(d), (float(s) - first) / 1000,
             ((float(e) if pd.notna(e) else last) - first) / 1000, str(status))
            for d, s, e, status in zip(known["device"], known["start_ms"], known["end_ms"],
                                       known["status"], strict=True)]
    return TimelineInfo(devices, bars)


STATUS_COLOURS = {"FINISHED": "#4c72b0", "PRUNED": "#dd8452", "FAILED": "#c44e52",
                  "KILLED": "#8c8c8c"}


def draw_timeline(info: TimelineInfo) -> Figure:
    fig = figure(8, 1.2 + 0.45 * len(info.devices), left=1.3)
    ax = fig.add_subplot()
    for row, start, end, status in info.bars:
        ax.broken_barh([(start, max(end - start, 1e-3))], (row - 0.35, 0.7),
                       facecolors=STATUS_COLOURS.get(status, "#4c72b0"), alpha=0.55,
                       edgecolor="white", linewidth=0.5)
    ax.set_yticks(range(len(info.devices)), info.devices)
    ax.invert_yaxis()
    ax.set_xlabel("seconds since the search's first trial started")
    counts = [sum(1 for bar in info.bars if bar[0] == i) for i in range(len(info.devices))]
    shares = ", ".join(f"{d}: {n}" for d, n in zip(info.devices, counts, strict=True))
    ax.set_title(f"Trials per device over time ({shares})", fontsize=10)
    return fig
