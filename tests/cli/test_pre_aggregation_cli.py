"""`fedchain simulate --pre-aggregation`: a bad step is refused before the run, in one line."""

from __future__ import annotations

import pytest
from _cli_here import fedchain_here


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--strategy", "cclip", "--pre-aggregation", "sort"], "pre-aggregation 'sort' is not"),
        (["--pre-aggregation", "nnm"], "fltrust is not one it feeds"),
        (["--strategy", "fedavg", "--pre-aggregation", "nnm"], "fedavg is not one it feeds"),
        (
            ["--strategy", "krum", "--pre-aggregation", "bucketing:4", "--byzantine", "1"],
            "3 buckets of 4",
        ),
    ],
)
def test_a_refused_pre_aggregation_gives_one_line_and_exit_code_2(
    args: list[str], message: str
) -> None:
    done = fedchain_here("simulate", *args)  # refused before anything starts: in this process
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error:")
    assert message in lines[0]
