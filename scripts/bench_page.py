"""docs/BENCHMARKS.md's sections written by the benchmarks that run after `scripts/bench.py`."""

from __future__ import annotations

from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "docs" / "BENCHMARKS.md"


def write_section(heading: str, text: str, doc: Path = BENCHMARKS) -> None:
    """Replace the section that starts with ``heading`` (up to the next ``## `` heading) by
    ``text``, or append ``text`` when the page has no such section."""
    current = doc.read_text()
    start = current.find(f"\n{heading}")
    if start < 0:
        doc.write_text(current.rstrip("\n") + "\n\n" + text)
        return
    end = current.find("\n## ", start + 1)
    tail = current[end:] if end >= 0 else "\n"
    doc.write_text(current[:start] + "\n" + text + tail)
