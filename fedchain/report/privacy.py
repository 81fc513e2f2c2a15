"""The privacy spend of a DP run: each participant's epsilon per round against the task's cap.

Read from summary.json (each outcome's ``epsilon``, the cumulative spend its node reported) and
the spec's DP terms (``dp_epsilon``, ``dp_delta``, ``dp_clip_norm``, ``dp_rounds``,
``dp_accountant``). A run
without DP has no such terms and the report shows no privacy section.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fedchain.privacy import LEGACY_ACCOUNTANT
from fedchain.report._format import node_addresses, short, who

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["epsilon_figure", "epsilon_plot", "epsilon_table", "privacy_terms_line"]

#: The absence reason a node gives when its budget is spent (fedchain.federation.privacy_budget).
EXHAUSTED = "privacy budget exhausted"


def privacy_terms_line(spec: Mapping[str, Any]) -> str | None:
    """The spec's DP terms in one line, or None when the task trains without DP."""
    if not spec.get("dp_epsilon"):
        return None
    return (
        f"record-level DP-SGD: epsilon <= {spec['dp_epsilon']:g} per site, delta "
        f"{spec.get('dp_delta', 0):g}, clip norm {spec.get('dp_clip_norm', 0):g}, noise planned "
        f"over {spec.get('dp_rounds', 0)} rounds, "
        # A spec made before dp_accountant existed was counted with RDP.
        f"{str(spec.get('dp_accountant') or LEGACY_ACCOUNTANT).upper()} accountant"
    )


def epsilon_table(summary: Mapping[str, Any]) -> tuple[list[int], dict[str, list[str]]]:
    """The rounds, and for each participant its cell per round: the cumulative epsilon it
    reported, ``spent`` when it refused the round for its budget, ``—`` when not in it."""
    rounds = summary["rounds"]
    addresses = node_addresses(rounds)
    numbers = [int(r["round"]) for r in rounds]
    cells: dict[str, list[str]] = {}
    for i, r in enumerate(rounds):
        for p in r["participants"]:
            row = cells.setdefault(who(p, addresses), ["—"] * len(rounds))
            if p.get("epsilon") is not None:
                row[i] = f"{float(p['epsilon']):.3f}"
            elif EXHAUSTED in str(p.get("reason", "")):
                row[i] = "spent"
    return numbers, cells


def epsilon_figure(summary: Mapping[str, Any], titled: bool = True) -> Figure:
    """Each participant's cumulative epsilon per round (a line each) and the cap (dashed)."""
    from fedchain.report.plots import _figure, _palette, _rc, _round_limits, _style

    cap = float(summary["spec"]["dp_epsilon"])
    rounds = summary["rounds"]
    addresses = node_addresses(rounds)
    series: dict[str, list[tuple[int, float]]] = {}
    for r in rounds:
        for p in r["participants"]:
            if p.get("epsilon") is not None:
                key = who(p, addresses)
                series.setdefault(key, []).append((int(r["round"]), float(p["epsilon"])))
    with _rc():
        fig = _figure()
        ax = fig.add_subplot()
        _style(ax)
        for colour, (name, points) in zip(
            _palette(len(series)), sorted(series.items()), strict=True
        ):
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, marker="o", markersize=3, color=colour, label=short(name))
        ax.axhline(cap, color="#dc2626", linestyle="--", linewidth=1.2, label=f"cap {cap:g}")
        _round_limits(ax, [int(r["round"]) for r in rounds])
        ax.set_ylim(0, cap * 1.12)
        ax.set_xlabel("round")
        ax.set_ylabel("cumulative epsilon")
        if len(series) <= 10:
            ax.legend(loc="lower right", ncols=2)
        if titled:
            ax.set_title("privacy spend per participant (dashed: the task's cap)")
        return fig


def epsilon_plot(summary: Mapping[str, Any], titled: bool = True) -> bytes:
    """:func:`epsilon_figure` as PNG bytes."""
    from fedchain.report.plots import _png, _rc

    with _rc():
        return _png(epsilon_figure(summary, titled))
