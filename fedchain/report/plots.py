"""The plots of a run, drawn from its summary.json document with matplotlib.

Each plot has a ``*_figure`` function returning the matplotlib Figure (to inspect or restyle) and
a ``*_plot`` function returning it as PNG bytes. ``fedchain.federation.run_artifacts`` writes
``accuracy.png`` and ``rewards.png`` with :func:`write_plots`; the HTML report embeds all four.

Axes are chosen so that a small change looks small: accuracy spans at least
:data:`MIN_ACCURACY_SPAN`, and loss, rewards and gas start at zero. An axis fitted to the data
alone turns one holdout example (0.009 of accuracy on 114 examples) into a full-height cliff.
"""

from __future__ import annotations

import io
import math
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedchain.report._format import node_addresses, short, title, who

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "MIN_ACCURACY_SPAN",
    "accuracy_figure",
    "accuracy_limits",
    "accuracy_plot",
    "gas_figure",
    "gas_plot",
    "loss_limits",
    "reward_share_figure",
    "reward_share_plot",
    "score_heatmap",
    "score_heatmap_figure",
    "write_plots",
]

#: The narrowest accuracy axis, a tenth of the [0, 1] range.
MIN_ACCURACY_SPAN = 0.1
#: Accuracy limits snap out to multiples of this, so the ticks are round numbers.
_ACCURACY_GRID = 0.05
#: Every plot has the same size and type sizes, so they sit side by side in the report.
_SIZE = (5.6, 3.2)
_BLUE, _RED = "#2563eb", "#dc2626"


# ---------------------------------------------------------------------------------- axes


def accuracy_limits(values: Sequence[float]) -> tuple[float, float]:
    """The accuracy axis's limits: at least :data:`MIN_ACCURACY_SPAN` wide, inside [0, 1].

    The window is centred on the values, slid (not shrunk) to stay inside [0, 1], snapped out
    to multiples of 0.05 and given a small margin so a marker on the edge is drawn whole.
    """
    if not values:
        low, high = 0.0, 1.0
    else:
        middle = (min(values) + max(values)) / 2
        half = max(max(values) - min(values), MIN_ACCURACY_SPAN) / 2
        low, high = middle - half, middle + half
        shift = max(0.0, -low) - max(0.0, high - 1.0)
        low, high = low + shift, high + shift
        low = max(0.0, math.floor(low / _ACCURACY_GRID + 1e-9) * _ACCURACY_GRID)
        high = min(1.0, math.ceil(high / _ACCURACY_GRID - 1e-9) * _ACCURACY_GRID)
    margin = 0.03 * (high - low)
    return low - margin, high + margin


def loss_limits(values: Sequence[float]) -> tuple[float, float]:
    """The loss axis's limits: from zero (a cross-entropy's floor) to a little above the most."""
    finite = [v for v in values if math.isfinite(v)]
    top = max(finite, default=0.0)
    return 0.0, (top * 1.08 if top > 0 else 1.0)


# ---------------------------------------------------------------------------------- drawing


def _figure(height: float = _SIZE[1]) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(_SIZE[0], height), dpi=100, layout="constrained")


def _style(ax: Axes) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.25, linewidth=0.8)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=144, facecolor="white")
    return buffer.getvalue()


@contextmanager
def _rc() -> Iterator[None]:
    """The plots' type sizes. Labels come from the run (a rejected reply names itself): never
    parse them as mathtext. Tick labels are made when drawn, so draw inside this too."""
    from matplotlib import rc_context

    style: dict[Any, Any] = {
        "font.size": 9,
        "axes.titlesize": 10,
        "axes.labelsize": 9.5,
        "legend.fontsize": 8,
        "text.parse_math": False,
    }
    with rc_context(style):
        yield


def _palette(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _round_limits(ax: Axes, rounds: Sequence[int]) -> None:
    if rounds:
        ax.set_xlim(rounds[0] - 0.5, rounds[-1] + 0.5)


# ---------------------------------------------------------------------------------- accuracy


def accuracy_figure(summary: Mapping[str, Any], titled: bool = True) -> Figure:
    """Holdout accuracy (left axis) and loss (right axis) per round, failed rounds shaded red."""
    rounds = summary["rounds"]
    done = [r for r in rounds if r["accuracy"] is not None and r["loss"] is not None]
    xs = [r["round"] for r in done]
    with _rc():
        fig = _figure()
        ax_acc = fig.add_subplot()
        _style(ax_acc)
        for r in rounds:
            if r["failed_reason"]:
                ax_acc.axvspan(r["round"] - 0.4, r["round"] + 0.4, color=_RED, alpha=0.12, lw=0)
        accuracy = [float(r["accuracy"]) for r in done]
        ax_acc.plot(xs, accuracy, marker="o", color=_BLUE)
        ax_acc.set_ylim(*accuracy_limits(accuracy))
        ax_acc.set_xlabel("round")
        ax_acc.set_ylabel("holdout accuracy", color=_BLUE)
        ax_loss = ax_acc.twinx()
        ax_loss.spines["top"].set_visible(False)
        loss = [float(r["loss"]) for r in done]
        ax_loss.plot(xs, loss, marker="s", color=_RED)
        ax_loss.set_ylim(*loss_limits(loss))
        ax_loss.set_ylabel("holdout loss", color=_RED)
        _round_limits(ax_acc, [r["round"] for r in rounds])
        if titled:
            ax_acc.set_title(title(summary))
        return fig


def accuracy_plot(summary: Mapping[str, Any], titled: bool = True) -> bytes:
    """:func:`accuracy_figure` as PNG bytes."""
    with _rc():
        return _png(accuracy_figure(summary, titled))


# ---------------------------------------------------------------------------------- rewards


def _cumulative_shares(
    summary: Mapping[str, Any],
) -> tuple[list[int], list[str], list[list[float]]]:
    """The rounds, the rewarded participants (most first) and each one's cumulative share of
    the rewards attributed up to each round (zero before anything is)."""
    totals: dict[str, int] = defaultdict(int)
    snapshots: list[dict[str, int]] = []
    for r in summary["rounds"]:
        for p in r["participants"]:
            if p["accepted"] and int(p["reward"]):
                totals[who(p)] += int(p["reward"])
        snapshots.append(dict(totals))
    names = sorted(totals, key=lambda name: (-totals[name], name.lower()))
    shares = [[snap.get(n, 0) / (sum(snap.values()) or 1) for snap in snapshots] for n in names]
    return [r["round"] for r in summary["rounds"]], names, shares


def reward_share_figure(summary: Mapping[str, Any], titled: bool = True) -> Figure:
    """Each participant's cumulative share of the rewards attributed so far, a stacked bar per
    round (bars, not areas: a round that attributed nothing is an empty bar, not a ramp)."""
    from matplotlib.ticker import PercentFormatter

    rounds, names, shares = _cumulative_shares(summary)
    with _rc():
        fig = _figure()
        ax = fig.add_subplot()
        _style(ax)
        ax.grid(axis="x", visible=False)
        bottom = [0.0] * len(rounds)
        for name, share, colour in zip(names, shares, _palette(len(names)), strict=True):
            ax.bar(rounds, share, bottom=bottom, width=0.8, color=colour, label=short(name, 6, 4))
            bottom = [b + s for b, s in zip(bottom, share, strict=True)]
        if names and len(names) <= 20:  # listed top to bottom as stacked
            handles, texts = ax.get_legend_handles_labels()
            ax.legend(handles[::-1], texts[::-1], loc="center left", frameon=False,
                      bbox_to_anchor=(1.01, 0.5))  # fmt: skip
        _round_limits(ax, rounds)
        ax.set_ylim(0, 1)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_xlabel("round")
        ax.set_ylabel("cumulative share of rewards")
        if titled:
            ax.set_title(f"rewards by {summary['spec'].get('contribution', '?')}")
        return fig


def reward_share_plot(summary: Mapping[str, Any], titled: bool = True) -> bytes:
    """:func:`reward_share_figure` as PNG bytes."""
    with _rc():
        return _png(reward_share_figure(summary, titled))


# ---------------------------------------------------------------------------------- scores

# A heat-map cell: scored, or why it has no score (participants not sampled stay blank).
_SCORED, _REJECTED, _ABSENT, _FAILED_ROUND = 1, 2, 3, 4
_NO_SCORE = {_REJECTED: "rejected", _ABSENT: "absent", _FAILED_ROUND: "failed"}


def _score_grid(rounds: Sequence[Mapping[str, Any]], names: Sequence[str]) -> tuple[Any, Any]:
    """The rounds x participants matrices of scores (NaN where none) and of cell kinds."""
    import numpy as np

    addresses = node_addresses(rounds)
    column = {name: j for j, name in enumerate(names)}
    scores = np.full((len(rounds), len(names)), np.nan)
    kinds = np.zeros((len(rounds), len(names)), dtype=int)
    for i, r in enumerate(rounds):
        for p in r["participants"]:
            j = column.get(who(p, addresses))
            if j is None:
                continue
            if p["accepted"] and not r["failed_reason"]:
                scores[i, j], kinds[i, j] = float(p["score"]), _SCORED
            elif p["accepted"]:
                kinds[i, j] = _FAILED_ROUND
            else:
                kinds[i, j] = _ABSENT if p["absent"] else _REJECTED
    return scores, kinds


def _score_norm(scores: Any) -> tuple[Any, Any]:
    """The colour map and its norm: diverging around zero when scores have both signs."""
    import numpy as np
    from matplotlib import colormaps
    from matplotlib.colors import Normalize, TwoSlopeNorm

    finite = scores[np.isfinite(scores)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if low < 0 < high:  # leave-one-out and Shapley scores can be negative: white is zero
        return colormaps["RdBu"], TwoSlopeNorm(vcenter=0.0, vmin=low, vmax=high)
    return colormaps["Blues"], Normalize(vmin=min(low, 0.0), vmax=max(high, 1e-12))


def _label_cells(ax: Axes, scores: Any, kinds: Any, cmap: Any, norm: Any) -> None:
    import numpy as np

    cells = kinds.size
    if cells > 200:
        return
    size = 9 if cells <= 16 else 7.5 if cells <= 64 else 6
    for i, j in zip(*np.nonzero(kinds), strict=True):
        if kinds[i, j] == _SCORED:
            red, green, blue, _ = cmap(norm(scores[i, j]))
            dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5
            text, colour = f"{scores[i, j]:.2g}", "white" if dark else "#0f172a"
        else:
            text, colour = _NO_SCORE[int(kinds[i, j])], "#7f1d1d"
        ax.text(j, i, text, ha="center", va="center", fontsize=size, color=colour)


def score_heatmap_figure(
    summary: Mapping[str, Any], order: Sequence[str] | None = None, titled: bool = True
) -> Figure:
    """Rounds x participants: each accepted update's contribution score; rejected cells red,
    absent ones grey, failed rounds amber, participants not sampled blank. ``order`` orders the
    columns (participants named as :func:`fedchain.report.participants` names them)."""
    import numpy as np
    from matplotlib.colors import ListedColormap
    from matplotlib.ticker import MaxNLocator

    rounds = summary["rounds"]
    addresses = node_addresses(rounds)
    names = list(order or sorted({who(p, addresses) for r in rounds for p in r["participants"]}))
    scores, kinds = _score_grid(rounds, names)
    cmap, norm = _score_norm(scores)
    with _rc():
        fig = _figure(min(8.0, max(_SIZE[1], 1.2 + 0.22 * len(rounds))))
        ax = fig.add_subplot()
        flags = np.where(kinds >= _REJECTED, kinds, np.nan)
        flat = ListedColormap(["#fecaca", "#e2e8f0", "#fde68a"])  # rejected, absent, failed
        ax.imshow(flags, cmap=flat, vmin=1.5, vmax=4.5, aspect="auto")
        image = ax.imshow(np.ma.masked_invalid(scores), cmap=cmap, norm=norm, aspect="auto")
        _label_cells(ax, scores, kinds, cmap, norm)
        labels = [short(name, 6, 4) for name in names]
        ax.set_xticks(range(len(names)), labels, rotation=30, ha="right", fontsize=7.5)
        ax.set_yticks(range(len(rounds)), [str(r["round"]) for r in rounds])
        ax.set_ylabel("round")
        ax.tick_params(length=0)
        for side in ax.spines.values():
            side.set_visible(False)
        if titled:
            ax.set_title(f"contribution scores ({summary['spec'].get('contribution', '?')})")
        bar = fig.colorbar(image, ax=ax, shrink=0.9, pad=0.02, label="score")
        bar.locator = MaxNLocator(6)
        bar.update_ticks()
        return fig


def score_heatmap(
    summary: Mapping[str, Any], order: Sequence[str] | None = None, titled: bool = True
) -> bytes:
    """:func:`score_heatmap_figure` as PNG bytes."""
    with _rc():
        return _png(score_heatmap_figure(summary, order, titled))


# ---------------------------------------------------------------------------------- gas


def gas_figure(summary: Mapping[str, Any], titled: bool = True) -> Figure:
    """Gas of each round's commit (or fail) transaction from zero, failed rounds in red."""
    from matplotlib.ticker import FuncFormatter

    rounds = summary["rounds"]
    with _rc():
        fig = _figure()
        ax = fig.add_subplot()
        _style(ax)
        ax.grid(axis="x", visible=False)
        colours = [_RED if r["failed_reason"] else _BLUE for r in rounds]
        gas = [int(r["gas_used"] or 0) for r in rounds]
        bars = ax.bar([r["round"] for r in rounds], gas, color=colours, width=0.65)
        if len(rounds) <= 15:
            labels = [f"{g / 1000:,.0f}k" for g in gas]
            ax.bar_label(bars, labels=labels, fontsize=7.5, padding=2, color="#475569")
        ax.set_ylim(bottom=0)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / 1000:,.0f}k"))
        ax.set_xlabel("round")
        ax.set_ylabel("gas used")
        if titled:
            ax.set_title("gas per round (red: failed round)")
        return fig


def gas_plot(summary: Mapping[str, Any], titled: bool = True) -> bytes:
    """:func:`gas_figure` as PNG bytes."""
    with _rc():
        return _png(gas_figure(summary, titled))


def write_plots(summary: Mapping[str, Any], out: Path) -> None:
    """Write ``accuracy.png`` and ``rewards.png`` of a summary.json document into ``out``."""
    (out / "accuracy.png").write_bytes(accuracy_plot(summary))
    (out / "rewards.png").write_bytes(reward_share_plot(summary))
