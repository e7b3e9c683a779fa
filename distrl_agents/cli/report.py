"""``distrl-report``: per-game tables, aggregate human-normalized scores and plots of the runs
under the given directories (the work is :func:`distrl_agents.evaluation.report.build_report`)."""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import Any

from distrl_agents.evaluation.records import FINAL_FILE, RESULTS_FILE, ReportError
from distrl_agents.evaluation.report import build_report

__all__ = ["report_main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="distrl-report",
        description=(
            "Per-game tables, aggregate human-normalized scores (median, IQM, mean, optimality "
            "gap with stratified-bootstrap CIs, Agarwal et al. 2021) and plots for the runs under "
            f"the given directories (any directory holding {RESULTS_FILE} or {FINAL_FILE}, "
            "searched recursively)."
        ),
    )
    p.add_argument("dirs", nargs="+", help="run, sweep or output directories to search")
    p.add_argument("--out", default=None, help="output directory (default: <first dir>/report)")
    p.add_argument(
        "--benchmark",
        default="auto",
        help="game set to report coverage against: atari57, atari55, atari100k or auto "
        "(default; an explicit set also restricts the aggregates to its games)",
    )
    p.add_argument(
        "--compare",
        default="",
        help="comma-separated published results to add, e.g. DER,SPR (Atari-100k per-game "
        "scores, shown as extra agents), Dopamine-C51,Dopamine-IQN,Dopamine-Quantile (Dopamine's "
        "per-game baselines at 200M frames, sticky actions; also Dopamine-DQN, "
        "Dopamine-DQN-Adam-MSE, Dopamine-Rainbow) or C51,IQN (published 200M-frame aggregates); "
        "with DER "
        "the report also says which DER settings each run used (experiment=atari100k: the "
        "paper's; atari100k_dopamine: Dopamine's)",
    )
    p.add_argument("--reps", type=int, default=2000, help="bootstrap resamples (default 2000)")
    p.add_argument("--confidence", type=float, default=0.95, help="CI level (default 0.95)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG/SVG figures")
    p.add_argument(
        "--curves",
        default="auto",
        choices=["auto", "hns", "raw"],
        help="y scale of the learning curves: auto (default) and hns plot human-normalized "
        "scores where every agent of a game has reference scores, raw plots raw game scores "
        "(as Dopamine's per-game plots); published --compare scores appear as dashed lines",
    )
    return p


def report_main(argv: list[str] | None = None) -> int:
    """Entry point of ``distrl-report``; returns the process exit status."""
    args = _parser().parse_args(argv)
    compare = [c.strip() for c in args.compare.split(",") if c.strip()]

    def show(message: Warning | str, *_: Any, **__: Any) -> None:
        print(f"distrl-report: warning: {message}", file=sys.stderr)

    try:
        if not 0.0 < args.confidence < 1.0:
            raise ReportError(f"--confidence must be in (0, 1), got {args.confidence}")
        with warnings.catch_warnings():
            warnings.showwarning = show  # one plain line per warning on the command line
            report = build_report(
                args.dirs,
                out=args.out,
                benchmark=args.benchmark,
                compare=compare,
                reps=args.reps,
                confidence=args.confidence,
                seed=args.seed,
                plots=not args.no_plots,
                curves=args.curves,
            )
    except ReportError as e:
        print(f"distrl-report: error: {e}", file=sys.stderr)
        return 2
    print(report.markdown)
    print(f"Wrote {len(report.files)} files to {report.files[0].parent}")
    return 0


if __name__ == "__main__":  # python -m distrl_agents.cli.report ... (as distrl-report)
    raise SystemExit(report_main())
