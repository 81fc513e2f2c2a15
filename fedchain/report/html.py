"""The self-contained HTML report of a run, built only from its directory.

One HTML file (inline CSS, the plots as base64 PNG data URIs, no script, nothing fetched), so it
can be mailed, archived or opened offline. It reads the run's ``summary.json``, ``ledger.json``
and ``task.json`` and nothing else, so it can be rebuilt at any time from a copied run directory.
Every string taken from the run is HTML-escaped: reasons for a rejected update come from the
participants' replies and must be treated as hostile.

Examples
--------
>>> from pathlib import Path
>>> write_report(Path("runs/latest"), verdict=None)  # doctest: +SKIP
PosixPath('runs/latest/report.html')
"""

from __future__ import annotations

import base64
import html
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fedchain._version import __version__
from fedchain.report._css import CSS
from fedchain.report._format import (
    RewardToken,
    format_tokens,
    has_ledger,
    node_addresses,
    plural,
    reward_token,
    score,
    short,
    title,
    who,
)
from fedchain.report._run import (
    Participant,
    ReportError,
    Run,
    load,
    participants,
    verdict_checks,
)
from fedchain.report.plots import accuracy_plot, gas_plot, reward_share_plot, score_heatmap
from fedchain.report.privacy import epsilon_plot, epsilon_table, privacy_terms_line

__all__ = ["render_report", "write_report"]

#: What an absent participant's outcome says when it recorded no reason (runs before reasons).
ABSENT_WITHOUT_REASON = "did not reply within the round"


def _e(value: object) -> str:
    """Escape anything taken from the run (or the verdict) for HTML text and attributes."""
    return html.escape(str(value), quote=True)


def _code(value: str | None, head: int = 10, tail: int = 6) -> str:
    """A hash or address, shortened, the whole value in its title."""
    if not value:
        return '<span class="muted">—</span>'
    return f'<code title="{_e(value)}">{_e(short(value, head, tail))}</code>'


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


def _unchecked(check: Mapping[str, Any]) -> bool:
    """A row for a check that could not run (issue 19): neither a pass nor a failure."""
    return check.get("status") == "not checked"


def _tally(checks: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
    """The checks that failed and those that could not run."""
    unchecked = sum(_unchecked(c) for c in checks)
    return sum(not c["ok"] for c in checks) - unchecked, unchecked


def _badge(verdict: Mapping[str, Any] | None) -> str:
    if verdict is None:
        return '<div class="badge none"><span class="dot"></span>not audited</div>'
    ok, checks = verdict_checks(verdict)
    failed, unchecked = _tally(checks)
    if ok:
        return (
            f'<div class="badge ok"><span class="dot"></span>audit passed'
            f"<small>{plural(len(checks), 'check')}</small></div>"
        )
    if not failed:
        return (
            f'<div class="badge warn"><span class="dot"></span>audit incomplete'
            f"<small>{unchecked} of {len(checks)} not checked</small></div>"
        )
    return (
        f'<div class="badge fail"><span class="dot"></span>audit failed'
        f"<small>{failed} of {len(checks)} checks</small></div>"
    )


def _budget(run: Run) -> int:
    """The task's reward per round, as the ledger recorded it at createTask."""
    for e in run.events:
        if e["event"] == "TaskCreated" and e["args"].get("taskId") == run.summary["task_id"]:
            return int(e["args"]["rewardPerRound"])
    return max((int(r["budget"]) for r in run.summary["rounds"]), default=0)


def _cards(run: Run, people: int, token: RewardToken) -> str:
    """The five headline numbers: accuracy, rounds, participants, gas, rewards."""
    s = run.summary
    rounds = s["rounds"]
    final = _final(s)
    ledger = has_ledger(s)
    committed = sum(bool(r["committed"]) for r in rounds)
    failed = sum(bool(r["failed_reason"]) for r in rounds)
    rejected = sum(int(r["rejected"]) for r in rounds)
    absent = sum(int(r["absent"]) for r in rounds)
    gas = sum(int(r["gas_used"] or 0) for r in rounds)
    attributed = sum(int(v) for v in s["rewards"].values())
    budget = format_tokens(_budget(run), token)
    # What the rounds did not earn stayed in the pool (runs before issue 15 record none).
    unearned = sum(int(r.get("unearned") or 0) for r in rounds if r["committed"])
    kept = f" · {format_tokens(unearned, token)} unearned, kept in the pool" if unearned else ""
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
            str(people),
            f"{plural(rejected, 'update')} rejected · {plural(absent, 'absence')}",
        ),
        (
            "gas",
            f"{gas:,}" if ledger else "—",
            f"{len(run.events)} ledger events" if ledger else "no ledger: no gas spent",
        ),
        (
            "rewards attributed",
            _amount(attributed, token) if ledger else "—",
            f"budget {_e(budget)} a round{_e(kept)}" if ledger else "no ledger: none attributed",
        ),
    ]
    return "".join(
        f'<div class="card"><div class="label">{label}</div><div class="value">{value}</div>'
        f'<div class="sub">{sub}</div></div>'
        for label, value, sub in cards
    )


def _amount(amount: int, token: RewardToken) -> str:
    """A headline token amount: the number large, the symbol after it small."""
    number = _e(format_tokens(amount, token, symbol=False))
    return f'{number} <span class="unit">{_e(token.symbol)}</span>'


def _token_fact(token: RewardToken) -> str:
    """The reward token's address, symbol and decimals (or that an old run did not record
    them)."""
    unit = (
        f"{_e(token.symbol)} · {plural(token.decimals, 'decimal')}"
        if token.recorded
        else "symbol not recorded by this run: amounts in whole tokens of 18 decimals"
    )
    return f"{_code(token.address, 42, 0)} {unit}"


def _facts(run: Run, token: RewardToken) -> str:
    """Task, chain, contracts and hashes."""
    s, chain = run.summary, run.summary["chain"]
    ledger = has_ledger(s)
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
        ("task", _task(s)),
        ("chain", chain_text),
        ("spec hash", f"<code>{_e(s['spec_hash'])}</code> {spec_check}"),
        ("initial model", f"<code>{_e(run.spec.get('initial_model_hash', '—'))}</code>"),
        ("final model", f"<code>{_e(s['final_model_hash'])}</code>"),
    ]
    if ledger:
        facts[2:2] = [
            ("ledger contract", f"<code>{_e(chain.get('ledger'))}</code>"),
            ("reward token", _token_fact(token)),
            ("coordinator", _parties(s, "coordinator")),
            ("registrar", _parties(s, "registrar")),
        ]
    return "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts)


def _parties(summary: Mapping[str, Any], role: str) -> str:
    """The parties that had ``role`` in the run, "Name (0xab12…)" with the whole address on
    hover; the registrar and coordinators are parties as the participants are (issue 16)."""
    found = [
        f'<span title="{_e(address)}">{_e(entry.get("label") or address)}</span>'
        for address, entry in sorted(summary.get("parties", {}).items())
        if role in entry.get("roles", [])
    ]
    return ", ".join(found) or "— (not in the run's events)"


def _task(summary: Mapping[str, Any]) -> str:
    task = summary["task_id"]
    return f"task {_e(task)}" if task is not None else "no task (no ledger)"


def _header(run: Run, verdict: Mapping[str, Any] | None, people: int) -> str:
    s, spec = run.summary, run.spec
    token = reward_token(s)
    subtitle = (
        f"{plural(len(s['rounds']), 'round')} · {plural(people, 'participant')} · contribution "
        f"{_e(spec.get('contribution', '?'))} · partition {_e(spec.get('partition') or '?')}"
    )
    return f"""
<header class="hero">
  <div>
    <p class="eyebrow">fedchain run report · {_task(s)}</p>
    <h1>{_e(title(s))}</h1>
    <p class="subtitle">{subtitle}</p>
  </div>
  {_badge(verdict)}
</header>
<section class="cards">{_cards(run, people, token)}</section>
<section class="panel"><dl class="facts">{_facts(run, token)}</dl></section>"""


def _spec_section(run: Run) -> str:
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


def _plots_section(run: Run, order: Sequence[str]) -> str:
    s = run.summary
    ledger = has_ledger(s)
    method = _e(s["spec"].get("contribution", "?"))
    scored = any(p["accepted"] for r in s["rounds"] for p in r["participants"])

    def empty(headline: str, why: str) -> str:
        return f'<div class="empty"><strong>{headline}</strong><span>{why}</span></div>'

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
        f"<figure><figcaption>{name}<small>{caption}</small></figcaption>{content}</figure>"
        for name, caption, content in figures
    )
    return (
        f'<section class="panel" id="plots"><h2>Plots</h2><div class="plots">{body}</div></section>'
    )


def _round_blocks(run: Run) -> dict[int, int]:
    blocks: dict[int, int] = {}
    for e in run.events:
        if (
            e["event"] in ("RoundCommitted", "RoundFailed")
            and e["args"].get("taskId") == (run.summary["task_id"])
        ):
            blocks[int(e["args"]["round"])] = int(e["block"])
    return blocks


def _round_status(run: Run, r: Mapping[str, Any], blocks: Mapping[int, int]) -> str:
    """Committed (in which block), failed (why, and whether the chain recorded it), or neither."""
    if r["committed"]:
        block = r["round"] in blocks and f'<div class="muted">block {blocks[r["round"]]}</div>'
        return _pill("ok", "committed") + (block or "")
    ledger = has_ledger(run.summary)
    if r["failed_reason"]:
        where = "recorded on chain" if r.get("tx_hash") else "not on chain"
        return (
            _pill("fail", "failed")
            + f'<div class="reason">{_e(r["failed_reason"])}</div>'
            + (f'<div class="muted">{where}</div>' if ledger else "")
        )
    return _pill("warn", "not committed") if ledger else _pill("none", "no ledger")


def _outcome_list(css: str, label: str, items: Sequence[tuple[str, str]]) -> str:
    if not items:
        return ""
    listed = "".join(f"<li>{_code(name, 8, 4)} {_e(reason)}</li>" for name, reason in items)
    return f'<div class="{css}"><span class="label">{label}</span><ul>{listed}</ul></div>'


def _round_details(r: Mapping[str, Any], addresses: Mapping[int, str]) -> str:
    """The row under a round listing each rejected update and each absent participant, with
    the reason recorded for it."""
    rejected = [
        (who(p), p.get("reason") or "no reason given")
        for p in r["participants"]
        if not p["accepted"] and not p["absent"]
    ]
    absent = [
        (who(p, addresses), p.get("reason") or ABSENT_WITHOUT_REASON)
        for p in r["participants"]
        if p["absent"]
    ]
    lists = _outcome_list("rejected", "rejected", rejected) + _outcome_list(
        "absent", "absent", absent
    )
    return f'<tr class="outcomes"><td></td><td colspan="8">{lists}</td></tr>' if lists else ""


def _rounds_section(run: Run) -> str:
    s = run.summary
    ledger = has_ledger(s)
    blocks = _round_blocks(run)
    addresses = node_addresses(s["rounds"])
    groups = []
    for r in s["rounds"]:
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
        row += f"<td>{_code(r['global_model_hash'])}</td><td>{_round_status(run, r, blocks)}</td>"
        css = "failed" if r["failed_reason"] else ""
        groups.append(f'<tbody class="{css}"><tr>{row}</tr>{_round_details(r, addresses)}</tbody>')
    table = _table(
        ["#round", "#accuracy", "#loss", "#accepted", "#rejected", "#absent", "#gas",
         "global model", "status"],
        groups,
        "rounds",
        grouped=True,
    )  # fmt: skip
    note = "" if ledger else '<p class="note">No ledger: no gas was spent, nothing committed.</p>'
    return f'<section class="panel" id="rounds"><h2>Rounds</h2>{note}{table}</section>'


def _privacy_section(run: Run) -> str:
    """Each participant's epsilon per round against the cap; nothing for a run without DP."""
    terms = privacy_terms_line(run.spec)
    if terms is None:
        return ""
    rounds, cells = epsilon_table(run.summary)
    rows = [
        f"<tr><td>{_code(name, 8, 4)}</td>"
        + "".join(f'<td class="num">{_e(c)}</td>' for c in row)
        + "</tr>"
        for name, row in sorted(cells.items())
    ]
    table = _table(["participant", *(f"#{r}" for r in rounds)], rows, "privacy")
    figure = _image(epsilon_plot(run.summary, titled=False), "cumulative epsilon per round")
    return (
        f'<section class="panel" id="privacy"><h2>Privacy spend</h2>'
        f'<p class="note">{_e(terms)}. Each cell is the cumulative epsilon the site reported '
        "after the round; <em>spent</em>: it refused the round, its budget would have passed "
        f"the cap.</p><figure>{figure}</figure>{table}</section>"
    )


def _party(p: Participant) -> str:
    """A participant as "Name (0xab12…)": its registered name, then its address."""
    address = _code(p.who, 12, 8)
    return f"{_e(p.name)} ({address})" if p.name else address


def _participants_section(run: Run, people: Sequence[Participant]) -> str:
    ledger = has_ledger(run.summary)
    token = reward_token(run.summary)
    total = sum(p.reward for p in people) or 1
    rows = []
    for p in people:
        role = _pill("none" if p.role == "honest" else "warn", p.role)
        mean = score(p.mean_score) if p.mean_score is not None else "—"
        row = (
            f"<td>{_party(p)}</td><td>{role}</td>"
            f'<td class="num">{p.accepted}</td><td class="num">{p.rejected}</td>'
            f'<td class="num">{p.absent}</td><td class="num">{mean}</td>'
        )
        if ledger:
            share = p.reward / total
            row += (
                f'<td class="num">{_e(format_tokens(p.reward, token))}</td>'
                f'<td class="share"><span class="bar"><span style="width:{share:.1%}"></span>'
                f"</span>{share:.1%}</td>"
            )
            if p.on_chain_reward is not None and p.on_chain_reward != p.reward:
                chain_says = format_tokens(p.on_chain_reward, token)
                row += f"<td>{_pill('fail', f'chain says {chain_says}')}</td>"
            else:
                row += f"<td>{_pill('ok', 'matches chain')}</td>"
        rows.append(f"<tr>{row}</tr>")
    headers = ["participant", "role", "#accepted", "#rejected", "#absent", "#mean score"]
    if ledger:
        headers += ["#total reward", "share", "on chain"]
        note = (
            f'<p class="note">Rewards in {_e(token.symbol)}; <em>absent</em> counts the rounds a '
            "participant was sampled for and sent nothing; <em>on chain</em> compares the "
            "rewards with the <code>RewardAttributed</code> events in <code>ledger.json</code>.</p>"
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
    ok, checks = verdict_checks(verdict)
    # failures first, then what could not be checked, otherwise as given
    ordered = sorted(checks, key=lambda c: (c["ok"], not _unchecked(c)))
    rows = [
        f'<tr class="{"" if c["ok"] else "failed"}">'
        f"<td>{_result_pill(c)}</td>"
        f"<td>{_e(c.get('check', '?'))}</td>"
        f'<td class="num">{_e(c["task"]) if c.get("task") is not None else "—"}</td>'
        f'<td class="num">{_e(c["round"]) if c.get("round") is not None else "—"}</td>'
        f"<td>{_code(c.get('participant'), 8, 4)}</td>"
        f'<td class="detail">{_e(c.get("detail") or "")}</td></tr>'
        for c in ordered
    ]
    failed, unchecked = _tally(checks)
    if ok:
        headline, css = f"{plural(len(checks), 'check')}, all passed", "ok"
    elif failed:
        headline, css = f"{failed} of {len(checks)} checks failed", "fail"
    else:
        headline, css = f"{unchecked} of {len(checks)} checks could not run: not checked", "warn"
    if failed and unchecked:
        headline += f"; {unchecked} not checked"
    table = _table(["result", "check", "#task", "#round", "participant", "detail"], rows, "audit")
    return (
        f'<section class="panel" id="audit"><h2>Audit verdict</h2>'
        f'<p class="verdict {css}">{headline}</p>{table}</section>'
    )


def _result_pill(check: Mapping[str, Any]) -> str:
    if check["ok"]:
        return _pill("ok", "pass")
    return _pill("warn", "not checked") if _unchecked(check) else _pill("fail", "FAIL")


def render_report(out: Path, verdict: Mapping[str, Any] | None) -> str:
    """The report of the run in ``out`` as one HTML document (see :func:`write_report`)."""
    run = load(out)
    try:
        people = participants(run.summary, run.events)
        body = "".join(
            [
                _header(run, verdict, len(people)),
                _spec_section(run),
                _plots_section(run, [p.who for p in people]),
                _rounds_section(run),
                _privacy_section(run),
                _participants_section(run, people),
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
    heading = _e(title(run.summary)) + (f" · task {_e(task)}" if task is not None else "")
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>fedchain report · {heading}</title>
<style>{CSS}</style>
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
