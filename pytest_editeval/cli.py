"""`pytest-editeval compare RUN_A RUN_B`: the comparison table of two saved runs, without running anything,
with the same gate options as the plugin (`--compare-fail overall:-0.2`). Exit code: 0 gates passed,
1 a gate failed, 2 bad input."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import InputError
from .options import compare_gate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pytest-editeval", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    compare = commands.add_parser("compare", help="compare two saved runs (RUN_A is the new one)")
    compare.add_argument("run_a", metavar="RUN_A", help="name under .editeval/runs/ or a results JSON path")
    compare.add_argument("run_b", metavar="RUN_B", help="the baseline: a name or a path")
    compare.add_argument("--compare-fail", action="append", type=compare_gate, default=[], metavar="EXPR",
                         help="fail when a paired difference drops below DELTA, e.g. overall:-0.2 (repeatable)")
    compare.add_argument("--rootdir", default=".", help="folder holding .editeval/runs/ (default: here)")
    args = parser.parse_args(argv)

    from tabulate import tabulate

    from .compare import compare_runs
    from .report.table import METRIC_LABELS
    from .runs import load_run

    try:
        current, baseline = (load_run(name, Path(args.rootdir)) for name in (args.run_a, args.run_b))
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    subsets = list(current.aggregates["full"].subsets)
    deltas, outcomes = compare_runs([s.model_dump() for s in current.samples],
                                    [s.model_dump() for s in baseline.samples], args.compare_fail, subsets)
    fmt = lambda v, sign="": "-" if v is None else f"{v:{sign}.3f}"  # noqa: E731
    rows = [[METRIC_LABELS[d.metric], d.subset or "OVERALL (macro)", d.n, fmt(d.current), fmt(d.baseline),
             fmt(d.delta, "+"), "-" if d.delta is None else f"{d.ci_low:+.3f} .. {d.ci_high:+.3f}"]
            for d in sorted(deltas, key=lambda d: (list(METRIC_LABELS).index(d.metric), d.subset is None))]
    print(f"{current.model} ({args.run_a}) vs {baseline.model} ({args.run_b}): {current.benchmark} "
          f"{current.language}, paired by row over rows both scored")
    print(tabulate(rows, headers=["Metric", "Subset", "n", "A", "B", "A - B", "95% CI"], tablefmt="pretty"))
    for o in outcomes:
        ci = "" if o.delta.delta is None else f" (95% CI {o.delta.ci_low:+.3f} .. {o.delta.ci_high:+.3f}, n={o.delta.n})"
        print(f"{'PASS' if o.passed else 'FAIL'} {o.gate.expression}: {fmt(o.delta.delta, '+')}{ci}")
    return 1 if any(not o.passed for o in outcomes) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
