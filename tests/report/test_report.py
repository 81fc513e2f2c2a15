"""The HTML report: built from a real simulated run, parsed, and rendered by headless Chromium.

One small federation (3 clients, one a free-rider, 2 rounds, leave-one-out scores, embedded
chain) is run once through the `fedchain simulate` command; every test reads its directory.
Failed rounds, rejected updates, hostile strings and a run without a ledger are copies of that
run's files with the summary changed the way such a run writes it.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from fedchain.report import ReportError, write_report

from ._page import Page

pytestmark = pytest.mark.slow

CHECKS: list[dict[str, Any]] = [
    {"check": "global model stored", "ok": True, "task": 1, "round": 1, "participant": None,
     "detail": ""},
    {"check": "update matches commitment", "ok": False, "task": 1, "round": 2,
     "participant": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
     "detail": "store/ab12.safetensors hashes to 0x01, the commitment says 0x02"},
]  # fmt: skip
VERDICT = {"ok": False, "checks": CHECKS}
HOSTILE = '<script>alert("pwned")</script><img src=x onerror=alert(1)>'
HOSTILE_NAME = "$\\fr{<b>}$"  # short enough to be plotted whole: mathtext and markup
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def fedchain(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fedchain", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )


def png(data: bytes) -> Image.Image:
    assert data[:8] == PNG_MAGIC
    image = Image.open(io.BytesIO(data))
    image.load()  # decodes every pixel: a truncated or corrupt PNG raises
    return image


def decoded_images(page: Page) -> list[Image.Image]:
    prefix = "data:image/png;base64,"
    assert all(src.startswith(prefix) for src in page.images), "an image is not embedded"
    return [png(base64.b64decode(src[len(prefix) :], validate=True)) for src in page.images]


def derived_run(source: Path, target: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    """A copy of the run's three report inputs, its summary changed by ``change``."""
    target.mkdir()
    for name in ("ledger.json", "task.json"):
        shutil.copy(source / name, target / name)
    summary = json.loads((source / "summary.json").read_text())
    change(summary)
    (target / "summary.json").write_text(json.dumps(summary))
    return target


def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        pytest.fail(
            "chromium is not installed: run `make setup` (it installs the Debian package "
            "chromium) to render the report headless"
        )
    return found


def render(page: Path, work: Path) -> tuple[str, Image.Image]:
    """The DOM headless Chromium builds from the page, and its screenshot at 1280 x 3000."""
    common = [
        chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
        f"--user-data-dir={work / 'profile'}", "--window-size=1280,3000",
    ]  # fmt: skip
    dom = subprocess.run(
        [*common, "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert dom.returncode == 0, dom.stderr[-2000:]
    shot = work / "screenshot.png"
    done = subprocess.run(
        [*common, f"--screenshot={shot}", page.as_uri()],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return dom.stdout, png(shot.read_bytes())


# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real run through the command line a user types."""
    out = tmp_path_factory.mktemp("run") / "run"
    done = fedchain(
        "simulate", "--clients", "3", "--rounds", "2", "--attack", "free-rider:0.34",
        "--contribution", "loo", "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "report.html" in done.stdout
    return out


@pytest.fixture(scope="module")
def summary(run: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((run / "summary.json").read_text())
    return document


@pytest.fixture(scope="module")
def audited(run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_report(run, VERDICT, tmp_path_factory.mktemp("audited") / "report.html")


@pytest.fixture(scope="module")
def page(audited: Path) -> Page:
    return Page(audited.read_text())


def _fail_round_two(summary: dict[str, Any]) -> None:
    """Round 2 as a round that failed writes it: every reply but one rejected, one with a
    hostile reason, no global model, a fail transaction's gas."""
    second = summary["rounds"][1]
    first, *others = second["participants"]
    for p in others:
        p.update(accepted=False, reason="tensor fc1.weight holds NaN or infinite values")
        p.update(score=0.0, reward="0")
    others[0]["reason"] = HOSTILE
    others[-1]["address"] = HOSTILE_NAME  # a rejected reply can claim to be anyone
    first.update(score=0.0, reward="0")
    second.update(
        committed=False, failed_reason="1 valid updates, 2 needed", global_model_hash=None,
        accuracy=None, loss=None, gas_used=48_211, accepted=1, rejected=len(others),
    )  # fmt: skip
    summary["rewards"] = {
        address: str(sum(int(p["reward"]) for r in summary["rounds"] for p in r["participants"]
                         if p["address"] == address and p["accepted"]))
        for address in summary["rewards"]
    }  # fmt: skip


def _without_ledger(summary: dict[str, Any]) -> None:
    """What `--chain none` writes: no chain, no task, participants named by their node."""
    summary["chain"], summary["task_id"] = {"kind": "none"}, None
    names = {}
    for r in summary["rounds"]:
        r.update(committed=False, gas_used=0, tx_hash=None)
        for p in r["participants"]:
            names[p["address"]] = p["address"] = f"node-{p['node_id']}"
            p["role"] = "honest"
    summary["rewards"] = {names[a]: amount for a, amount in summary["rewards"].items()}


# ------------------------------------------------------------------------------------ tests


def test_simulate_writes_the_report_into_the_run(run: Path) -> None:
    report = run / "report.html"
    page = Page(report.read_text())
    text = " ".join(page.text)
    assert "audit passed" in text  # simulate audits the run it reports
    assert "audit failed" not in text
    assert page.rows("audit")
    assert len(page.rows("rounds")) == 2
    assert len(decoded_images(page)) == 4
    for plot in ("accuracy.png", "rewards.png"):  # the run's own plots, drawn by the same code
        assert png((run / plot).read_bytes()).width > 400


def test_the_report_is_one_file_with_every_image_embedded(audited: Path, page: Page) -> None:
    document = audited.read_text()
    images = decoded_images(page)
    assert len(images) == 4  # accuracy and loss, reward share, score heat map, gas
    for image in images:
        assert image.width > 400
        assert image.height > 200
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 50  # not blank
    assert page.scripts == 0
    assert page.links == 0
    assert "http://" not in document
    assert "https://" not in document
    assert "url(" not in document


def test_the_header_names_the_task_its_hashes_and_the_final_accuracy(
    page: Page, summary: dict[str, Any]
) -> None:
    text = " ".join(page.text)
    final = summary["rounds"][-1]
    assert f"task {summary['task_id']}" in text
    assert summary["spec_hash"] in text
    assert summary["final_model_hash"] in text
    assert summary["chain"]["ledger"] in text
    assert f"{final['accuracy']:.1%}" in text
    assert "matches task.json" in text
    assert "audit failed" in text


def test_the_header_names_the_coordinator_and_the_registrar(
    page: Page, summary: dict[str, Any]
) -> None:
    # Prepare: the run's parties by role, as its events gave them
    text = " ".join(page.text)
    by_role = {
        role: [e["label"] for e in summary["parties"].values() if role in e["roles"]]
        for role in ("coordinator", "registrar")
    }
    # Assert: each is shown with its label, as the participants are (one of each in a run)
    for role, labels in by_role.items():
        assert len(labels) == 1, (role, labels)
        assert f"{role} {labels[0]}" in text, (role, labels)


def test_the_spec_rounds_and_participants_tables_hold_the_run(
    run: Path, page: Page, summary: dict[str, Any]
) -> None:
    # Prepare
    spec = json.loads((run / "task.json").read_text())
    # Assert: the spec
    text = " ".join(page.text)
    for key, value in spec.items():
        assert key in text
        assert (value if isinstance(value, str) else json.dumps(value)) in text
    # Assert: one row per round
    rows = page.rows("rounds")
    assert [row[0] for row in rows] == ["1", "2"]
    for row, r in zip(rows, summary["rounds"], strict=True):
        assert row[1] == f"{r['accuracy']:.4f}"
        assert row[3] == str(r["accepted"])
        assert row[6] == f"{r['gas_used']:,}"
        assert row[8].startswith("committed block")
    # Assert: one row per participant, the free-rider named, rewards as the chain recorded
    participants = page.rows("participants")
    assert len(participants) == 3
    shown = {row[0]: row for row in participants}
    for address, amount in summary["rewards"].items():
        # Named as the on-chain registry names it: "Simulated site 0 (0x7099…)"
        name = summary["parties"][address]["name"]
        row = next(
            row for who, row in shown.items() if who.startswith(name) and address[:12] in who
        )
        assert row[-1] == "matches chain"
        assert row[6] == (f"{Decimal(amount).scaleb(-18):,.2f} FDT" if int(amount) else "0 FDT")
    assert sorted(row[1] for row in participants) == ["free-rider", "honest", "honest"]


def test_summary_json_records_the_reward_token_read_from_chain(
    summary: dict[str, Any], page: Page
) -> None:
    # The dev token, as DevToken.sol names it; the report writes its symbol after each amount.
    token = {"address": summary["chain"]["token"], "symbol": "FDT", "decimals": 18}
    assert summary["token"] == token
    assert f"{token['address']} FDT · 18 decimals" in " ".join(" ".join(page.text).split())


def test_the_verdict_table_lists_every_check_failures_first(page: Page) -> None:
    rows = page.rows("audit")
    assert [row[0] for row in rows] == ["FAIL", "pass"]
    assert rows[0][1] == "update matches commitment"
    assert rows[0][3] == "2"
    assert rows[0][4].startswith("0x709979")
    assert rows[0][5] == CHECKS[1]["detail"]
    assert "1 of 2 checks failed" in " ".join(page.text)


def test_chromium_renders_the_tables_and_the_images(audited: Path, tmp_path: Path) -> None:
    # Execute
    dom, screenshot = render(audited, tmp_path)
    # Assert: the DOM Chromium built holds every table and its rows
    rendered = Page(dom)
    assert set(rendered.tables) >= {"rounds", "participants", "audit"}
    assert len(rendered.rows("rounds")) == 2
    assert len(rendered.rows("participants")) == 3
    assert len(rendered.rows("audit")) == 2
    assert len(rendered.images) == 4
    # Assert: a full page, drawn: text, colours of the plots and the badges
    assert screenshot.size == (1280, 3000)
    pixels = screenshot.convert("RGB")
    colours = pixels.getcolors(maxcolors=1_000_000)
    assert colours is not None
    assert len(colours) > 2000, f"only {len(colours)} colours: did the page render?"
    counts = {colour: count for count, colour in colours}
    assert max(counts.values()) < 0.8 * 1280 * 3000  # not one colour everywhere
    assert counts.get((254, 226, 226), 0) > 5000  # the red badge of a failed audit, drawn


def test_failed_rounds_and_rejected_updates_are_shown_and_hostile_text_escaped(
    run: Path, tmp_path: Path
) -> None:
    # Prepare
    derived = derived_run(run, tmp_path / "failed", _fail_round_two)
    hostile_check = {**CHECKS[1], "detail": HOSTILE}
    # Execute
    report = write_report(derived, {"ok": False, "checks": [CHECKS[0], hostile_check]})
    document = report.read_text()
    page = Page(document)
    # Assert: nothing taken from the run became markup
    assert "<script" not in document
    assert page.scripts == 0
    assert all(src.startswith("data:image/png;base64,") for src in page.images)
    assert document.count("&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;") == 2
    assert "<b>" not in document
    assert html.escape(HOSTILE_NAME) in document
    # Assert: the failed round, its reason and every rejected update with its reason
    failed = page.rows("rounds")[1]
    assert failed[1:3] == ["—", "—"]
    assert failed[4] == "2"
    assert failed[6] == "48,211"
    assert failed[8] == "failed 1 valid updates, 2 needed recorded on chain"
    listed = [row for row in page.tables["rounds"] if row[0] == ""]
    assert len(listed) == 1
    assert HOSTILE in listed[0][1]
    assert "holds NaN or infinite values" in listed[0][1]
    assert len(decoded_images(page)) == 4


def test_a_run_without_a_ledger_says_there_is_no_gas_and_no_reward(
    run: Path, tmp_path: Path
) -> None:
    # Prepare
    derived = derived_run(run, tmp_path / "none", _without_ledger)
    (derived / "ledger.json").write_text("[]\n")
    # Execute
    page = Page(write_report(derived, None).read_text())
    # Assert
    text = " ".join(page.text)
    assert "no task (no ledger)" in text
    assert "no gas spent" in text
    assert "no rewards attributed" in text
    assert "not audited" in text
    assert len(decoded_images(page)) == 2  # accuracy and loss, scores: no rewards, no gas
    assert [row[6] for row in page.rows("rounds")] == ["—", "—"]
    assert [row[8] for row in page.rows("rounds")] == ["no ledger", "no ledger"]
    assert all(len(row) == 6 for row in page.rows("participants"))  # no reward columns


def test_fedchain_report_writes_where_asked_and_names_a_missing_run(
    run: Path, tmp_path: Path
) -> None:
    # Execute
    written = fedchain("report", "--run", str(run), "--out", str(tmp_path / "r" / "x.html"))
    missing = fedchain("report", "--run", str(tmp_path / "nowhere"))
    # Assert
    assert written.returncode == 0, written.stderr
    assert Page((tmp_path / "r" / "x.html").read_text()).rows("rounds")
    assert missing.returncode == 2  # "no run here" exits 2 in every command
    assert missing.stderr.strip().startswith("error: no run at")
    assert "fedchain simulate" in missing.stderr


@pytest.mark.parametrize(
    "verdict",
    [{"ok": "yes", "checks": []}, {"ok": True}, {"ok": False, "checks": [{"check": "x"}]}],
)
def test_a_verdict_of_the_wrong_shape_is_refused(run: Path, verdict: dict[str, Any]) -> None:
    with pytest.raises(ReportError, match="ok"):
        write_report(run, verdict, run / "never.html")
    assert not (run / "never.html").exists()


def test_a_damaged_run_is_refused_with_what_to_do(run: Path, tmp_path: Path) -> None:
    derived = derived_run(run, tmp_path / "damaged", lambda s: s.pop("rounds"))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "summary.json").write_text("{not json")
    with pytest.raises(ReportError, match="rerun `fedchain simulate`"):
        write_report(derived, None)
    with pytest.raises(ReportError, match="not valid JSON"):
        write_report(tmp_path / "broken", None)
