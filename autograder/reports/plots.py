"""The class report's figures, drawn with matplotlib's Agg backend (no display, no pyplot state) and
returned as ``data:image/png;base64,...`` URIs, so that report.html embeds them and needs no other file.
Each function takes plain numbers (gathered by ``class_report``) and returns "" when there is nothing
to draw. Labels are passed in already formatted, so a figure shows the numbers exactly as the page does.

    totals_histogram(totals, possible, marks)     the autograded totals, with the quartiles as lines
    problem_multiples(scores, possible)           one small histogram per problem
    time_histogram(seconds, marks)                grading time per submission
"""
from __future__ import annotations

import base64
import io
import math

BAR = "#4c72b0"
MARK_STYLES = {"median": ("#cf222e", "-"), "Q1": ("#9a6700", "--"), "Q3": ("#9a6700", "--")}
DPI = 100


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _bins(high: float, most: int = 30) -> list[float]:
    """Bin edges over 0..``high``: one bin per whole point, centred on it (a bar is "this many points"),
    when that makes at most ``most`` bins; else ``most`` equal bins from 0."""
    high = max(float(high), 1.0)
    if high <= most and high.is_integer():
        return [i - 0.5 for i in range(int(high) + 2)]
    return [high * i / most for i in range(most + 1)]


def _style(ax) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.tick_params(labelsize=8)


def _marks(ax, marks: list[tuple[str, str, float]]) -> None:
    """Vertical lines at ``(kind, label, x)``, kind one of MARK_STYLES; the labels go in the legend."""
    for kind, label, x in marks:
        color, line = MARK_STYLES.get(kind, ("#59636e", ":"))
        ax.axvline(x, color=color, linestyle=line, linewidth=1.6, label=label)
    if marks:
        ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))


def totals_histogram(totals: list[float], possible: float, marks: list[tuple[str, str, float]]) -> str:
    """The autograded totals from 0 to ``possible``, the median and the quartiles as lines."""
    if not totals:
        return ""
    fig = _figure(8.0, 3.0)
    ax = fig.add_subplot()
    edges = _bins(max(possible, *totals))
    ax.hist(totals, bins=edges, color=BAR, edgecolor="white")
    _marks(ax, marks)
    ax.set_xlim(edges[0], edges[-1])
    ax.set_xlabel(f"autograded points (out of {possible:g})", fontsize=9)
    ax.set_ylabel("submissions", fontsize=9)
    _style(ax)
    return _png(fig)


def problem_multiples(scores: dict[int, dict[str, float]], possible: dict[int, float], columns: int = 4) -> str:
    """Small multiples: per problem, how many submissions got how many of its points (shared y axis)."""
    if not scores:
        return ""
    problems = sorted(scores)
    columns = min(columns, len(problems))
    rows = int(math.ceil(len(problems) / columns))
    fig = _figure(8.0, 0.4 + 1.75 * rows)
    axes = fig.subplots(rows, columns, sharey=True, squeeze=False)
    for ax, p in zip(axes.flat, problems):
        values = list(scores[p].values())
        top = max(possible.get(p, 0.0), *values, 0.0)
        edges = _bins(top, most=12)
        ax.hist(values, bins=edges, color=BAR, edgecolor="white")
        ax.set_xlim(edges[0], edges[-1])
        ax.set_title(f"Problem {p} (out of {top:g})", fontsize=9)
        _style(ax)
    for ax in list(axes.flat)[len(problems):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("submissions", fontsize=8)
    return _png(fig)


def time_histogram(seconds: list[float], marks: list[tuple[str, str, float]]) -> str:
    """Grading time per submission (results.json's execution_time), the median as a line."""
    if not seconds:
        return ""
    fig = _figure(8.0, 2.6)
    ax = fig.add_subplot()
    top = max(max(seconds), 1.0) * 1.02
    ax.hist(seconds, bins=20, range=(0, top), color=BAR, edgecolor="white")
    _marks(ax, marks)
    ax.set_xlim(0, top)
    ax.set_xlabel("seconds per submission", fontsize=9)
    ax.set_ylabel("submissions", fontsize=9)
    _style(ax)
    return _png(fig)
