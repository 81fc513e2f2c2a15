"""Plots and the HTML report of a run, built only from its directory.

The report is one self-contained HTML file (inline CSS, the plots as base64 PNG data URIs, no
script, nothing fetched), so it can be mailed, archived or opened offline. It reads the run's
``summary.json``, ``ledger.json`` and ``task.json`` and nothing else, so it can be rebuilt at any
time from a copied run directory. Every string taken from the run is HTML-escaped: reasons for a
rejected update come from the participants' replies and must be treated as hostile.

The plot functions take the summary.json document and return PNG bytes;
``fedchain.federation.run_artifacts`` uses them for ``accuracy.png`` and ``rewards.png``.

Examples
--------
>>> from pathlib import Path
>>> write_report(Path("runs/latest"), verdict=None)  # doctest: +SKIP
PosixPath('runs/latest/report.html')
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import os
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedchain._version import __version__
from fedchain.errors import FedchainError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "ReportError",
    "accuracy_plot",
    "gas_plot",
    "reward_share_plot",
    "score_heatmap",
    "write_plots",
    "write_report",
]

#: Reward tokens have 18 decimals (the dev token, like most ERC-20s).
TOKEN_DECIMALS = 18
_BLUE, _RED, _GREEN, _GREY = "#2563eb", "#dc2626", "#16a34a", "#94a3b8"


class ReportError(FedchainError, ValueError):
    """A run directory cannot be reported: a file is missing or not what fedchain wrote."""


# ---------------------------------------------------------------------------------- the run


@dataclass(frozen=True)
class _Participant:
    """One participant over the whole run, as the report shows it."""

    who: str
    role: str
    accepted: int
    rejected: int
    absent: int
    mean_score: float | None
    reward: int
    on_chain_reward: int | None


def _who(entry: Mapping[str, Any]) -> str:
    """A participant's name: its address, or its Flower node when a reply carried none."""
    return str(entry.get("address") or f"node-{entry.get('node_id', '?')}")


def _short(text: str, head: int = 8, tail: int = 6) -> str:
    return text if len(text) <= head + tail + 1 else f"{text[:head]}…{text[-tail:]}"


def _has_ledger(summary: Mapping[str, Any]) -> bool:
    return str(summary["chain"].get("kind", "none")) != "none"


def _participants(
    summary: Mapping[str, Any], events: Sequence[Mapping[str, Any]]
) -> list[_Participant]:
    """Every participant seen in any round, the best rewarded first."""
    seen: dict[str, dict[str, Any]] = {}
    for r in summary["rounds"]:
        for p in r["participants"]:
            who = _who(p)
            entry = seen.setdefault(
                who, {"role": p.get("role", "honest"), "counts": [0, 0, 0], "scores": []}
            )
            if p["accepted"]:
                entry["counts"][0] += 1
                entry["scores"].append(float(p["score"]))
            elif p["absent"]:
                entry["counts"][2] += 1
            else:
                entry["counts"][1] += 1
    on_chain: dict[str, int] | None = None
    if _has_ledger(summary):
        on_chain = defaultdict(int)
        for e in events:
            if e["event"] == "RewardAttributed" and e["args"].get("taskId") == summary["task_id"]:
                on_chain[str(e["args"]["participant"])] += int(e["args"]["amount"])
    rewards = {str(k): int(v) for k, v in summary["rewards"].items()}
    rows = [
        _Participant(
            who=who,
            role=str(entry["role"]),
            accepted=entry["counts"][0],
            rejected=entry["counts"][1],
            absent=entry["counts"][2],
            mean_score=(sum(entry["scores"]) / len(entry["scores"])) if entry["scores"] else None,
            reward=rewards.get(who, 0),
            on_chain_reward=None if on_chain is None else on_chain.get(who, 0),
        )
        for who, entry in seen.items()
    ]
    return sorted(rows, key=lambda p: (-p.reward, p.who.lower()))


# ---------------------------------------------------------------------------------- plots

#: Every plot has the same size and type sizes, so they sit side by side in the report.
_SIZE = (5.6, 3.2)


def _figure(height: float = _SIZE[1]) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(_SIZE[0], height), dpi=100, layout="constrained")


def _style(ax: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.25, linewidth=0.8)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=144, facecolor="white")
    return buffer.getvalue()


def _title(summary: Mapping[str, Any]) -> str:
    spec = summary["spec"]
    return f"{spec['dataset']} · {spec['model']} · {spec['strategy']}"


def _rc() -> Any:
    from matplotlib import rc_context

    # Labels come from the run (a rejected reply names itself): never parse them as mathtext.
    return rc_context(
        {
            "font.size": 9,
            "axes.titlesize": 10,
            "axes.labelsize": 9.5,
            "legend.fontsize": 8,
            "text.parse_math": False,
        }
    )


def accuracy_plot(summary: Mapping[str, Any], titled: bool = True) -> bytes:
    """Holdout accuracy and loss per round (failed rounds shaded red), as PNG bytes."""
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
        ax_acc.plot(xs, [r["accuracy"] for r in done], marker="o", color=_BLUE)
        ax_acc.set_xlabel("round")
        ax_acc.set_ylabel("holdout accuracy", color=_BLUE)
        ax_loss = ax_acc.twinx()
        ax_loss.spines["top"].set_visible(False)
        ax_loss.plot(xs, [r["loss"] for r in done], marker="s", color=_RED)
        ax_loss.set_ylabel("holdout loss", color=_RED)
        if rounds:
            first, last = rounds[0]["round"], rounds[-1]["round"]
            ax_acc.set_xlim(first - 0.5, last + 0.5)
        if titled:
            ax_acc.set_title(_title(summary))
        return _png(fig)


def reward_share_plot(summary: Mapping[str, Any], titled: bool = True) -> bytes:
    """Each participant's cumulative share of the rewards attributed so far, stacked per round."""
    from matplotlib.ticker import PercentFormatter

    totals: dict[str, int] = defaultdict(int)
    snapshots: list[dict[str, int]] = []
    rounds = [r["round"] for r in summary["rounds"]]
    for r in summary["rounds"]:
        for p in r["participants"]:
            if p["accepted"]:
                totals[_who(p)] += int(p["reward"])
        snapshots.append(dict(totals))
    names = sorted(totals, key=lambda who: (-totals[who], who.lower()))
    shares = [[snap.get(w, 0) / (sum(snap.values()) or 1) for snap in snapshots] for w in names]
    with _rc():
        fig = _figure()
        ax = fig.add_subplot()
        _style(ax)
        if rounds and names:
            labels = [_short(w, 6, 4) for w in names]
            ax.stackplot(rounds, shares, labels=labels, colors=_palette(len(names)), alpha=0.9)
            ax.set_xlim(rounds[0], rounds[-1] if len(rounds) > 1 else rounds[0] + 1)
            if len(names) <= 20:  # listed top to bottom as stacked
                handles, texts = ax.get_legend_handles_labels()
                ax.legend(handles[::-1], texts[::-1], loc="center left", frameon=False,
                          bbox_to_anchor=(1.01, 0.5))  # fmt: skip
        ax.set_ylim(0, 1)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_xlabel("round")
        ax.set_ylabel("cumulative share of rewards")
        if titled:
            ax.set_title(f"rewards by {summary['spec'].get('contribution', '?')}")
        return _png(fig)


def _palette(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


# A heat-map cell: scored, or why it has no score (participants not sampled stay blank).
_SCORED, _REJECTED, _ABSENT, _FAILED_ROUND = 1, 2, 3, 4
_NO_SCORE = {_REJECTED: "rejected", _ABSENT: "absent", _FAILED_ROUND: "failed"}


def _score_grid(rounds: Sequence[Mapping[str, Any]], names: Sequence[str]) -> tuple[Any, Any]:
    """The rounds x participants matrices of scores (NaN where none) and of cell kinds."""
    import numpy as np

    column = {who: j for j, who in enumerate(names)}
    scores = np.full((len(rounds), len(names)), np.nan)
    kinds = np.zeros((len(rounds), len(names)), dtype=int)
    for i, r in enumerate(rounds):
        for p in r["participants"]:
            j = column.get(_who(p))
            if j is None:
                continue
            if p["accepted"] and not r["failed_reason"]:
                scores[i, j], kinds[i, j] = float(p["score"]), _SCORED
            elif p["accepted"]:
                kinds[i, j] = _FAILED_ROUND
            else:
                kinds[i, j] = _ABSENT if p["absent"] else _REJECTED
    return scores, kinds


def score_heatmap(
    summary: Mapping[str, Any], order: Sequence[str] | None = None, titled: bool = True
) -> bytes:
    """Rounds x participants: each accepted update's contribution score; rejected cells red,
    absent ones grey, failed rounds amber, participants not sampled blank. ``order`` orders the
    columns."""
    import numpy as np
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap, Normalize, TwoSlopeNorm
    from matplotlib.ticker import MaxNLocator

    rounds = summary["rounds"]
    names = list(order or sorted({_who(p) for r in rounds for p in r["participants"]}))
    scores, kinds = _score_grid(rounds, names)
    finite = scores[np.isfinite(scores)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    norm: Normalize
    if low < 0 < high:  # leave-one-out and Shapley scores can be negative: white is zero
        cmap, norm = colormaps["RdBu"], TwoSlopeNorm(vcenter=0.0, vmin=low, vmax=high)
    else:
        cmap, norm = colormaps["Blues"], Normalize(vmin=min(low, 0.0), vmax=max(high, 1e-12))
    with _rc():
        fig = _figure(min(8.0, max(_SIZE[1], 1.2 + 0.22 * len(rounds))))
        ax = fig.add_subplot()
        flags = np.where(kinds >= _REJECTED, kinds, np.nan)
        flat = ListedColormap(["#fecaca", "#e2e8f0", "#fde68a"])  # rejected, absent, failed
        ax.imshow(flags, cmap=flat, vmin=1.5, vmax=4.5, aspect="auto")
        image = ax.imshow(np.ma.masked_invalid(scores), cmap=cmap, norm=norm, aspect="auto")
        cells = kinds.size
        if cells <= 200:
            size = 9 if cells <= 16 else 7.5 if cells <= 64 else 6
            for i, j in zip(*np.nonzero(kinds), strict=True):
                if kinds[i, j] == _SCORED:
                    red, green, blue, _ = cmap(norm(scores[i, j]))
                    dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5
                    text, colour = f"{scores[i, j]:.2g}", "white" if dark else "#0f172a"
                else:
                    text, colour = _NO_SCORE[int(kinds[i, j])], "#7f1d1d"
                ax.text(j, i, text, ha="center", va="center", fontsize=size, color=colour)
        labels = [_short(w, 6, 4) for w in names]
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
        return _png(fig)


def gas_plot(summary: Mapping[str, Any], titled: bool = True) -> bytes:
    """Gas of each round's commit (or fail) transaction, failed rounds in red."""
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
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / 1000:,.0f}k"))
        ax.set_xlabel("round")
        ax.set_ylabel("gas used")
        if titled:
            ax.set_title("gas per round (red: failed round)")
        return _png(fig)


def write_plots(summary: Mapping[str, Any], out: Path) -> None:
    """Write ``accuracy.png`` and ``rewards.png`` of a summary.json document into ``out``."""
    (out / "accuracy.png").write_bytes(accuracy_plot(summary))
    (out / "rewards.png").write_bytes(reward_share_plot(summary))


# ---------------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class _Run:
    """What the report is built from: the run directory's three documents."""

    out: Path
    summary: dict[str, Any]
    events: list[dict[str, Any]]
    spec: dict[str, Any]
    spec_file_hash: str


def _read(out: Path, name: str) -> bytes:
    try:
        return (out / name).read_bytes()
    except FileNotFoundError:
        raise ReportError(
            f"no {name} in {out}: give the directory of a finished run (`fedchain simulate --out`)"
        ) from None


def _json(out: Path, name: str, data: bytes) -> Any:
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReportError(
            f"{out / name} is not valid JSON ({exc}): restore it from a copy of the run, or "
            "rerun `fedchain simulate`"
        ) from None


def _load(out: Path) -> _Run:
    summary = _json(out, "summary.json", _read(out, "summary.json"))
    events = _json(out, "ledger.json", _read(out, "ledger.json"))
    spec_bytes = _read(out, "task.json")
    spec = _json(out, "task.json", spec_bytes)
    if not isinstance(summary, dict) or not isinstance(events, list) or not isinstance(spec, dict):
        raise ReportError(f"{out} holds JSON files of the wrong shape: is it a fedchain run?")
    # task.json is the canonical spec plus a newline; the spec hash is taken over the spec alone.
    spec_file_hash = "0x" + hashlib.sha256(spec_bytes.rstrip(b"\n")).hexdigest()
    return _Run(out, summary, events, spec, spec_file_hash)


def _verdict_checks(verdict: Mapping[str, Any]) -> tuple[bool, list[Mapping[str, Any]]]:
    """The verdict's overall result and its checks, after checking its shape."""
    checks = verdict.get("checks")
    if not isinstance(verdict.get("ok"), bool) or not isinstance(checks, list):
        raise ReportError(
            "the audit verdict needs {'ok': bool, 'checks': [...]} (Verdict.to_json() of "
            "fedchain.audit)"
        )
    for check in checks:
        if not isinstance(check, Mapping) or not isinstance(check.get("ok"), bool):
            raise ReportError(f"audit check {check!r} needs at least 'check' and a boolean 'ok'")
    return verdict["ok"] and all(c["ok"] for c in checks), checks


# ---------------------------------------------------------------------------------- HTML


def _e(value: object) -> str:
    """Escape anything taken from the run (or the verdict) for HTML text and attributes."""
    return html.escape(str(value), quote=True)


def _code(value: str | None, head: int = 10, tail: int = 6) -> str:
    """A hash or address, shortened, the whole value in its title."""
    if not value:
        return '<span class="muted">—</span>'
    return f'<code title="{_e(value)}">{_e(_short(value, head, tail))}</code>'


def _tokens(amount: int) -> str:
    if amount == 0:
        return "0"
    value = Decimal(amount).scaleb(-TOKEN_DECIMALS)
    return f"{value:,.2f}" if abs(value) >= Decimal("0.01") else f"{value:.2e}"


def _score(value: float) -> str:
    """Four decimals; a value too small for them in scientific notation, never "-0.0000"."""
    if value != 0 and abs(value) < 5e-5:
        return f"{value:.2e}"
    return f"{value:.4f}".replace("-0.0000", "0.0000")


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _pill(kind: str, text: str) -> str:
    return f'<span class="pill {kind}">{_e(text)}</span>'


def _image(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _table(
    headers: Iterable[str], rows: Iterable[str], css: str = "", grouped: bool = False
) -> str:
    """A table; a header written ``#name`` heads a column of numbers (right-aligned).
    ``grouped``: the rows are ``<tbody>`` groups already."""
    head = "".join(
        f'<th class="num">{h[1:]}</th>' if h.startswith("#") else f"<th>{h}</th>" for h in headers
    )
    body = "".join(rows) if grouped else f"<tbody>{''.join(rows)}</tbody>"
    return f'<table class="{css}"><thead><tr>{head}</tr></thead>{body}</table>'


def _final(summary: Mapping[str, Any]) -> Mapping[str, Any] | None:
    done = [r for r in summary["rounds"] if r["accuracy"] is not None]
    return done[-1] if done else None


def _badge(verdict: Mapping[str, Any] | None) -> str:
    if verdict is None:
        return '<div class="badge none"><span class="dot"></span>not audited</div>'
    ok, checks = _verdict_checks(verdict)
    failed = sum(not c["ok"] for c in checks)
    if ok:
        return (
            f'<div class="badge ok"><span class="dot"></span>audit passed'
            f"<small>{_n(len(checks), 'check')}</small></div>"
        )
    return (
        f'<div class="badge fail"><span class="dot"></span>audit failed'
        f"<small>{failed} of {len(checks)} checks</small></div>"
    )


def _budget(run: _Run) -> int:
    """The task's reward per round, as the ledger recorded it at createTask."""
    for e in run.events:
        if e["event"] == "TaskCreated" and e["args"].get("taskId") == run.summary["task_id"]:
            return int(e["args"]["rewardPerRound"])
    return max((int(r["budget"]) for r in run.summary["rounds"]), default=0)


def _header(run: _Run, verdict: Mapping[str, Any] | None) -> str:
    s = run.summary
    spec = run.spec
    rounds = s["rounds"]
    final = _final(s)
    ledger = _has_ledger(s)
    chain = s["chain"]
    committed = sum(bool(r["committed"]) for r in rounds)
    failed = sum(bool(r["failed_reason"]) for r in rounds)
    rejected = sum(int(r["rejected"]) for r in rounds)
    absent = sum(int(r["absent"]) for r in rounds)
    who = {_who(p) for r in rounds for p in r["participants"]}
    gas = sum(int(r["gas_used"] or 0) for r in rounds)
    attributed = sum(int(v) for v in s["rewards"].values())
    task = f"task {_e(s['task_id'])}" if s["task_id"] is not None else "no task (no ledger)"
    cards = [
        (
            "final accuracy",
            f"{final['accuracy']:.1%}" if final else "—",
            f"loss {final['loss']:.4f} · round {_e(final['round'])}" if final else "no round done",
        ),
        (
            "rounds",
            f"{committed} / {len(rounds)}" if ledger else str(len(rounds)),
            ("committed on chain" if ledger else "not recorded: no ledger")
            + (f" · {failed} failed" if failed else ""),
        ),
        (
            "participants",
            str(len(who)),
            f"{_n(rejected, 'update')} rejected · {absent} absent",
        ),
        (
            "gas",
            f"{gas:,}" if ledger else "—",
            f"{len(run.events)} ledger events" if ledger else "no ledger: no gas spent",
        ),
        (
            "rewards attributed",
            _tokens(attributed) if ledger else "—",
            f"budget {_tokens(_budget(run))} a round" if ledger else "no ledger: none attributed",
        ),
    ]
    card_html = "".join(
        f'<div class="card"><div class="label">{label}</div><div class="value">{value}</div>'
        f'<div class="sub">{sub}</div></div>'
        for label, value, sub in cards
    )
    spec_check = (
        _pill("ok", "matches task.json")
        if run.spec_file_hash == s["spec_hash"]
        else _pill("fail", f"task.json hashes to {run.spec_file_hash}")
    )
    chain_text = (
        f"{_e(chain['kind'])} · chain id {_e(chain.get('chain_id'))}"
        if ledger
        else "none (<code>--chain none</code>): nothing was recorded on a ledger"
    )
    facts = [
        ("task", task),
        ("chain", chain_text),
        ("spec hash", f"<code>{_e(s['spec_hash'])}</code> {spec_check}"),
        ("initial model", f"<code>{_e(spec.get('initial_model_hash', '—'))}</code>"),
        ("final model", f"<code>{_e(s['final_model_hash'])}</code>"),
    ]
    if ledger:
        facts[2:2] = [
            ("ledger contract", f"<code>{_e(chain.get('ledger'))}</code>"),
            ("reward token", f"<code>{_e(chain.get('token'))}</code>"),
        ]
    fact_html = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts)
    subtitle = (
        f"{len(rounds)} rounds · {len(who)} participants · contribution "
        f"{_e(spec.get('contribution', '?'))} · partition {_e(spec.get('partition') or '?')}"
    )
    return f"""
<header class="hero">
  <div>
    <p class="eyebrow">fedchain run report · {task}</p>
    <h1>{_e(_title(s))}</h1>
    <p class="subtitle">{subtitle}</p>
  </div>
  {_badge(verdict)}
</header>
<section class="cards">{card_html}</section>
<section class="panel"><dl class="facts">{fact_html}</dl></section>"""


def _spec_section(run: _Run) -> str:
    items = "".join(
        f"<div><dt>{_e(k)}</dt><dd>{_e(json.dumps(v) if not isinstance(v, str) else v)}</dd></div>"
        for k, v in sorted(run.spec.items())
    )
    return f"""
<section class="panel" id="spec">
  <h2>Task spec</h2>
  <p class="note">From <code>task.json</code>; its SHA-256 is the spec hash the ledger recorded.</p>
  <dl class="spec">{items}</dl>
</section>"""


def _plots_section(run: _Run, order: Sequence[str]) -> str:
    s = run.summary
    ledger = _has_ledger(s)
    method = _e(s["spec"].get("contribution", "?"))
    scored = any(p["accepted"] for r in s["rounds"] for p in r["participants"])

    def empty(title: str, why: str) -> str:
        return f'<div class="empty"><strong>{title}</strong><span>{why}</span></div>'

    no_ledger = "this run had no ledger (<code>--chain none</code>)"
    evaluated = any(r["accuracy"] is not None for r in s["rounds"])
    rewarded = any(int(amount) for amount in s["rewards"].values())
    figures = [
        (
            "Accuracy and loss per round",
            "on the holdout; failed rounds shaded red",
            _image(accuracy_plot(s, titled=False), "accuracy and loss per round")
            if evaluated
            else empty("no accuracy", "no round produced a global model"),
        ),
        (
            "Cumulative reward share",
            f"each participant's share of the rewards attributed so far ({method})",
            _image(reward_share_plot(s, titled=False), "cumulative reward share per participant")
            if ledger and rewarded
            else empty("no rewards attributed", no_ledger if not ledger else "no round did"),
        ),
        (
            "Contribution scores",
            f"rounds by participants, {method}; rejected red, absent grey, failed round amber",
            _image(score_heatmap(s, order, titled=False), "heat map of contribution scores")
            if scored
            else empty("no scores", "no update was accepted in any round"),
        ),
        (
            "Gas per round",
            "the round's one commit (or fail) transaction; failed rounds red",
            _image(gas_plot(s, titled=False), "gas per round")
            if ledger
            else empty("no gas spent", no_ledger),
        ),
    ]
    body = "".join(
        f"<figure><figcaption>{title}<small>{caption}</small></figcaption>{content}</figure>"
        for title, caption, content in figures
    )
    return (
        f'<section class="panel" id="plots"><h2>Plots</h2><div class="plots">{body}</div></section>'
    )


def _round_blocks(run: _Run) -> dict[int, int]:
    blocks: dict[int, int] = {}
    for e in run.events:
        if (
            e["event"] in ("RoundCommitted", "RoundFailed")
            and e["args"].get("taskId") == (run.summary["task_id"])
        ):
            blocks[int(e["args"]["round"])] = int(e["block"])
    return blocks


def _rounds_section(run: _Run) -> str:
    s = run.summary
    ledger = _has_ledger(s)
    blocks = _round_blocks(run)
    groups = []
    for r in s["rounds"]:
        if r["committed"]:
            block = r["round"] in blocks and f'<div class="muted">block {blocks[r["round"]]}</div>'
            status = _pill("ok", "committed") + (block or "")
        elif r["failed_reason"]:
            where = "recorded on chain" if r.get("tx_hash") else "not on chain"
            status = (
                _pill("fail", "failed")
                + f'<div class="reason">{_e(r["failed_reason"])}</div>'
                + (f'<div class="muted">{where}</div>' if ledger else "")
            )
        else:
            status = _pill("warn", "not committed") if ledger else _pill("none", "no ledger")
        cells = [
            _e(r["round"]),
            f"{r['accuracy']:.4f}" if r["accuracy"] is not None else "—",
            f"{r['loss']:.4f}" if r["loss"] is not None else "—",
            _e(r["accepted"]),
            _e(r["rejected"]),
            _e(r["absent"]),
            f"{int(r['gas_used']):,}" if ledger else "—",
        ]
        row = "".join(f'<td class="num">{c}</td>' for c in cells)
        row += f"<td>{_code(r['global_model_hash'])}</td><td>{status}</td>"
        rejected = [p for p in r["participants"] if not p["accepted"] and not p["absent"]]
        reasons = "".join(
            f"<li>{_code(_who(p), 8, 4)} {_e(p.get('reason') or 'no reason given')}</li>"
            for p in rejected
        )
        detail = (
            f'<tr class="rejections"><td></td><td colspan="8"><span class="label">rejected'
            f'</span><ul class="reasons">{reasons}</ul></td></tr>'
            if reasons
            else ""
        )
        css = "failed" if r["failed_reason"] else ""
        groups.append(f'<tbody class="{css}"><tr>{row}</tr>{detail}</tbody>')
    table = _table(
        ["#round", "#accuracy", "#loss", "#accepted", "#rejected", "#absent", "#gas",
         "global model", "status"],
        groups,
        "rounds",
        grouped=True,
    )  # fmt: skip
    note = "" if ledger else '<p class="note">No ledger: no gas was spent, nothing committed.</p>'
    return f'<section class="panel" id="rounds"><h2>Rounds</h2>{note}{table}</section>'


def _participants_section(run: _Run, participants: Sequence[_Participant]) -> str:
    ledger = _has_ledger(run.summary)
    total = sum(p.reward for p in participants) or 1
    rows = []
    for p in participants:
        role = _pill("none" if p.role == "honest" else "warn", p.role)
        mean = _score(p.mean_score) if p.mean_score is not None else "—"
        row = (
            f"<td>{_code(p.who, 12, 8)}</td><td>{role}</td>"
            f'<td class="num">{p.accepted}</td><td class="num">{p.rejected}</td>'
            f'<td class="num">{p.absent}</td><td class="num">{mean}</td>'
        )
        if ledger:
            share = p.reward / total
            row += (
                f'<td class="num">{_tokens(p.reward)}</td>'
                f'<td class="share"><span class="bar"><span style="width:{share:.1%}"></span>'
                f"</span>{share:.1%}</td>"
            )
            if p.on_chain_reward is not None and p.on_chain_reward != p.reward:
                row += f"<td>{_pill('fail', f'chain says {_tokens(p.on_chain_reward)}')}</td>"
            else:
                row += f"<td>{_pill('ok', 'matches chain')}</td>"
        rows.append(f"<tr>{row}</tr>")
    headers = ["participant", "role", "#accepted", "#rejected", "#absent", "#mean score"]
    if ledger:
        headers += ["#total reward", "share", "on chain"]
        note = (
            '<p class="note">Rewards in tokens; <em>on chain</em> compares them with the '
            "<code>RewardAttributed</code> events in <code>ledger.json</code>.</p>"
        )
    else:
        note = '<p class="note">No ledger (<code>--chain none</code>): no rewards attributed.</p>'
    table = _table(headers, rows, "participants")
    return f'<section class="panel" id="participants"><h2>Participants</h2>{note}{table}</section>'


def _audit_section(verdict: Mapping[str, Any] | None) -> str:
    if verdict is None:
        return (
            '<section class="panel" id="audit"><h2>Audit verdict</h2>'
            '<p class="empty-line">not audited: run <code>fedchain audit</code> on this run '
            "to verify it against the chain and the store.</p></section>"
        )
    ok, checks = _verdict_checks(verdict)
    ordered = sorted(checks, key=lambda c: c["ok"])  # failures first, otherwise as given
    rows = [
        f'<tr class="{"" if c["ok"] else "failed"}">'
        f"<td>{_pill('ok', 'pass') if c['ok'] else _pill('fail', 'FAIL')}</td>"
        f"<td>{_e(c.get('check', '?'))}</td>"
        f'<td class="num">{_e(c["task"]) if c.get("task") is not None else "—"}</td>'
        f'<td class="num">{_e(c["round"]) if c.get("round") is not None else "—"}</td>'
        f"<td>{_code(c.get('participant'), 8, 4)}</td>"
        f'<td class="detail">{_e(c.get("detail") or "")}</td></tr>'
        for c in ordered
    ]
    failed = sum(not c["ok"] for c in checks)
    headline = (
        f"{_n(len(checks), 'check')}, all passed"
        if ok
        else f"{failed} of {len(checks)} checks failed"
    )
    table = _table(["result", "check", "#task", "#round", "participant", "detail"], rows, "audit")
    return (
        f'<section class="panel" id="audit"><h2>Audit verdict</h2>'
        f'<p class="verdict {"ok" if ok else "fail"}">{headline}</p>{table}</section>'
    )


_CSS = """
:root { --ink:#0f172a; --muted:#64748b; --line:#e2e8f0; --bg:#f1f5f9; --card:#fff;
  --blue:#2563eb; --green:#15803d; --green-bg:#dcfce7; --red:#b91c1c; --red-bg:#fee2e2;
  --amber:#92400e; --amber-bg:#fef3c7; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
  font: 14px/1.5 "Inter", "Segoe UI", "Helvetica Neue", "DejaVu Sans", Arial, sans-serif; }
main { max-width: 1200px; margin: 0 auto; padding: 28px 28px 48px; }
h1 { font-size: 28px; line-height: 1.2; margin: 2px 0 6px; letter-spacing: -0.01em; }
h2 { font-size: 17px; margin: 0 0 12px; }
code { font: 12.5px/1.4 "JetBrains Mono", "DejaVu Sans Mono", Menlo, Consolas, monospace;
  background:#f1f5f9; padding:1px 5px; border-radius:4px; word-break: break-all; }
.hero { display:flex; justify-content:space-between; align-items:center; gap:24px;
  background: linear-gradient(120deg, #0f172a, #1e3a8a); color:#fff; border-radius:14px;
  padding: 26px 30px; }
.hero .eyebrow { margin:0; text-transform:uppercase; letter-spacing:.08em; font-size:12px;
  color:#93c5fd; font-weight:600; }
.hero .subtitle { margin:0; color:#cbd5e1; }
.badge { display:flex; flex-direction:column; align-items:center; gap:2px; min-width:170px;
  padding: 12px 20px; border-radius: 12px; font-weight:700; font-size:17px; text-align:center; }
.badge small { font-weight:500; font-size:12px; opacity:.85; }
.badge .dot { width:10px; height:10px; border-radius:50%; background: currentColor; }
.badge.ok { background: var(--green-bg); color: var(--green); }
.badge.fail { background: var(--red-bg); color: var(--red); }
.badge.none { background: #e2e8f0; color: #334155; }
.cards { display:grid; grid-template-columns: repeat(5, 1fr); gap:14px; margin: 18px 0; }
.card { background:var(--card); border:1px solid var(--line); border-radius:12px;
  padding:14px 16px; }
.card .label { color:var(--muted); font-size:12px; text-transform:uppercase;
  letter-spacing:.06em; }
.card .value { font-size:24px; font-weight:700; margin-top:2px;
  font-variant-numeric: tabular-nums; }
.card .sub { color:var(--muted); font-size:12.5px; }
.panel { background:var(--card); border:1px solid var(--line); border-radius:12px;
  padding: 18px 20px; margin-bottom: 18px; }
.facts { display:grid; grid-template-columns: 150px 1fr; gap: 6px 16px; margin:0; }
.facts dt { color:var(--muted); }
.facts dd { margin:0; }
.spec { display:grid; grid-template-columns: repeat(3, 1fr); gap: 8px 20px; margin:0; }
.spec div { border-bottom:1px solid var(--line); padding: 4px 0; min-width:0; }
.spec dt { color:var(--muted); font-size:12px; }
.spec dd { margin:0; word-break: break-all; font-variant-numeric: tabular-nums; }
.note { color:var(--muted); margin: -6px 0 12px; }
.plots { display:grid; grid-template-columns: 1fr 1fr; gap: 16px; }
figure { margin:0; border:1px solid var(--line); border-radius:10px; padding:10px; }
figcaption { font-weight:600; margin-bottom:6px; }
figcaption small { display:block; font-weight:400; color:var(--muted); font-size:12.5px; }
figure img { width:100%; height:auto; display:block; }
.empty { display:flex; flex-direction:column; align-items:center; justify-content:center;
  min-height: 240px; background: #f8fafc; border-radius: 8px; color: var(--muted); gap:4px; }
.empty strong { color: var(--ink); font-size: 16px; }
table { width:100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
th.num { text-align:right; }
th { text-align:left; font-size:12px; text-transform:uppercase; letter-spacing:.05em;
  color:var(--muted); border-bottom:2px solid var(--line); padding: 8px 10px; }
td { border-bottom:1px solid var(--line); padding: 8px 10px; vertical-align: top; }
tbody tr:nth-child(even) { background:#f8fafc; }
table.rounds tbody tr { background: none; }
table.rounds tbody:nth-of-type(even) { background:#f8fafc; }
tr.failed, tbody tr.failed:nth-child(even), table.rounds tbody.failed { background: #fff1f2; }
tr.rejections td { border-top: none; padding-top: 0; }
tr.rejections .label { font-size: 11px; text-transform: uppercase; letter-spacing: .05em;
  color: var(--red); font-weight: 600; }
td code { white-space: nowrap; }
table.rounds tbody tr:not(:last-child) td { border-bottom: none; }
td.num { text-align:right; }
.muted { color: var(--muted); font-size: 12px; }
.reason, .detail { color: var(--red); }
tr:not(.failed) .detail { color: var(--muted); }
ul.reasons { list-style:none; margin:2px 0 0; padding:0; font-size:12.5px; color: var(--red); }
ul.reasons li { margin-top: 3px; }
.pill { display:inline-block; padding: 1px 9px; border-radius: 999px; font-size:12px;
  font-weight:600; white-space: nowrap; }
.pill.ok { background: var(--green-bg); color: var(--green); }
.pill.fail { background: var(--red-bg); color: var(--red); }
.pill.warn { background: var(--amber-bg); color: var(--amber); }
.pill.none { background: #e2e8f0; color: #334155; }
.share { white-space:nowrap; }
.bar { display:inline-block; width:90px; height:8px; background:#e2e8f0; border-radius:4px;
  margin-right:8px; vertical-align: middle; overflow:hidden; }
.bar span { display:block; height:100%; background: var(--blue); }
.verdict { font-weight:700; margin: -4px 0 12px; }
.verdict.ok { color: var(--green); } .verdict.fail { color: var(--red); }
.empty-line { color: var(--muted); }
footer { color: var(--muted); font-size: 12px; text-align:center; margin-top: 8px; }
"""


def render_report(out: Path, verdict: Mapping[str, Any] | None) -> str:
    """The report of the run in ``out`` as one HTML document (see :func:`write_report`)."""
    run = _load(out)
    try:
        participants = _participants(run.summary, run.events)
        body = "".join(
            [
                _header(run, verdict),
                _spec_section(run),
                _plots_section(run, [p.who for p in participants]),
                _rounds_section(run),
                _participants_section(run, participants),
                _audit_section(verdict),
            ]
        )
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        if isinstance(exc, ReportError):
            raise
        raise ReportError(
            f"{out / 'summary.json'} is not a summary fedchain wrote (schema "
            f"{run.summary.get('schema_version')!r}, problem: {exc!r}): rerun `fedchain simulate`"
        ) from exc
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    task = run.summary.get("task_id")
    title = _e(_title(run.summary)) + (f" · task {_e(task)}" if task is not None else "")
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>fedchain report · {title}</title>
<style>{_CSS}</style>
</head>
<body>
<main>
{body}
<footer>Built by fedchain {_e(__version__)} on {when} from summary.json, ledger.json and task.json
of <code>{_e(out)}</code>.</footer>
</main>
</body>
</html>
"""


def write_report(out: Path, verdict: Mapping[str, Any] | None, dest: Path | None = None) -> Path:
    """Write the self-contained HTML report of the run in ``out``.

    Parameters
    ----------
    out
        The run directory (``fedchain simulate --out``): its summary.json, ledger.json and
        task.json are all the report reads.
    verdict
        The audit's verdict (``fedchain.audit``'s ``Verdict.to_json()``: ``{"ok": bool,
        "checks": [{"check", "ok", "task", "round", "participant", "detail"}, ...]}``), or None
        for a run not audited.
    dest
        Where to write; default ``<out>/report.html``.

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    ReportError
        A file of the run is missing or malformed, or the verdict has the wrong shape.
    """
    document = render_report(out, verdict)
    dest = dest if dest is not None else out / "report.html"
    dest.parent.mkdir(parents=True, exist_ok=True)
    temporary = dest.with_name(dest.name + ".tmp")
    temporary.write_text(document, encoding="utf-8")
    os.replace(temporary, dest)
    return dest
