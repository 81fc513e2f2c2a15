"""Plots and the HTML report of a run, built only from its directory.

- :mod:`fedchain.report.plots`: the matplotlib plots of a summary.json document (Figures and PNG
  bytes); ``fedchain.federation.run_artifacts`` writes ``accuracy.png`` and ``rewards.png``.
- :mod:`fedchain.report.html`: the self-contained HTML report (summary.json, ledger.json,
  task.json in; one file out).
- :func:`format_tokens` and :func:`reward_token`: token amounts as a consortium reads them,
  ``"12.50 FDT"``, with the symbol and decimals the run recorded.

Examples
--------
>>> from pathlib import Path
>>> write_report(Path("runs/latest"), verdict=None)  # doctest: +SKIP
PosixPath('runs/latest/report.html')
"""

from fedchain.report._format import RewardToken, format_tokens, reward_token
from fedchain.report._run import ReportError
from fedchain.report.html import render_report, write_report
from fedchain.report.plots import (
    MIN_ACCURACY_SPAN,
    accuracy_figure,
    accuracy_limits,
    accuracy_plot,
    gas_figure,
    gas_plot,
    loss_limits,
    reward_share_figure,
    reward_share_plot,
    score_heatmap,
    score_heatmap_figure,
    write_plots,
)

__all__ = [
    "MIN_ACCURACY_SPAN",
    "ReportError",
    "RewardToken",
    "accuracy_figure",
    "accuracy_limits",
    "accuracy_plot",
    "format_tokens",
    "gas_figure",
    "gas_plot",
    "loss_limits",
    "render_report",
    "reward_share_figure",
    "reward_share_plot",
    "reward_token",
    "score_heatmap",
    "score_heatmap_figure",
    "write_plots",
    "write_report",
]
