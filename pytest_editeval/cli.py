"""The `pytest-editeval` command.

    pytest-editeval compare BASELINE NEW [--compare-fail EXPR]...   paired comparison of two saved runs
    pytest-editeval compare NEW --baseline BASELINE                  the same, with the baseline named
    pytest-editeval agreement RUN_A RUN_B [--json OUT] [--html OUT]    how far two judges agree on the same images
    pytest-editeval merge SHARD.json... [--threshold EXPR]... [--compare BASELINE] [--compare-fail EXPR]...
                          [--json OUT] [--html OUT] [--save NAME] [--images FOLDER]...
                                                                     gate the shards of a run as one run
    pytest-editeval demo FOLDER [--benchmark NAME]                   the whole flow locally, no key needed

compare reads like `diff`: the old run first, differences are NEW - BASELINE. Exit code: 0 gates passed,
1 a gate failed, 2 bad input. merge checks that the shard files (--editeval-shard K/N --editeval-json) make one
run, then aggregates, gates, compares and writes exactly as that run in one process would; exit code 0 gate
passed, 1 gate failed, 2 bad input or a merged run that could not be gated (a shard stopped or ran partly).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pytest_editeval.data.paths import printable
from pytest_editeval.errors import InputError
from pytest_editeval.options.types import choice, compare_gate, run_name, threshold


def main(argv: list[str] | None = None) -> int:
    from pytest_editeval import __version__
    parser = argparse.ArgumentParser(prog="pytest-editeval", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"pytest-editeval {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    compare = commands.add_parser("compare", help="compare two saved runs: BASELINE NEW (like diff)")
    compare.add_argument("runs", nargs="+", metavar="RUN",
                         help="BASELINE NEW, or NEW alone with --baseline: names under .editeval/runs/ or results "
                              "JSON paths")
    compare.add_argument("--baseline", metavar="RUN", help="the baseline run (then give only the new run)")
    compare.add_argument("--compare-fail", action="append", type=compare_gate, default=[], metavar="EXPR",
                         help="fail when a paired difference drops below DELTA, e.g. overall:-0.2 (repeatable)")
    compare.add_argument("--rootdir", default=".", help="folder holding .editeval/runs/ (default: here)")
    agree = commands.add_parser("agreement", help="how far two judges agree: two saved runs of the same images")
    agree.add_argument("run_a", metavar="RUN_A", help="a saved run (name under .editeval/runs/ or a results JSON)")
    agree.add_argument("run_b", metavar="RUN_B", help="the same images judged by another judge (or the same, again)")
    agree.add_argument("--json", metavar="OUT", help="write the agreement as JSON")
    agree.add_argument("--html", metavar="OUT", help="write the agreement as a self-contained HTML page")
    agree.add_argument("--rootdir", default=".", help="folder holding .editeval/runs/ (default: here)")
    merge = commands.add_parser("merge", help="check the shards of a run belong together, then aggregate, gate, "
                                "compare and write them as one run")
    merge.add_argument("shards", nargs="+", metavar="SHARD.json", help="the results JSON of every shard "
                       "(--editeval-shard K/N --editeval-json PATH), in any order")
    merge.add_argument("--threshold", action="append", type=threshold, default=[], metavar="EXPR",
                       help="gate expression, repeatable, as --editeval-threshold (e.g. 'overall>=7.0')")
    merge.add_argument("--gate", type=choice("gate policy", ("auto", "always", "never")), default="auto", metavar="{auto,always,never}",
                       help="auto (default): gate a merged run in which every row ran; always; never")
    merge.add_argument("--compare", metavar="NAME_OR_PATH", help="compare with a saved run (a name under "
                       ".editeval/runs/ of --rootdir, or a results JSON path)")
    merge.add_argument("--compare-fail", action="append", type=compare_gate, default=[], metavar="EXPR",
                       help="fail when a paired difference drops below DELTA, e.g. overall:-0.2 (repeatable)")
    merge.add_argument("--compare-missing", type=choice("compare-missing policy", ("error", "skip")),
                       default="error", metavar="{error,skip}", help="a --compare run that does not exist: error (default) or skip the "
                       "comparison with one line (a CI workflow's first run)")
    merge.add_argument("--json", type=Path, metavar="PATH", help="write the merged results JSON to PATH")
    merge.add_argument("--html", type=Path, metavar="PATH", help="write the HTML report to PATH")
    merge.add_argument("--save", type=run_name, metavar="NAME", help="save the merged run as NAME under "
                       ".editeval/runs/ of --rootdir (an incomplete run as NAME.incomplete)")
    merge.add_argument("--dataset", metavar="ID_OR_PATH", help="where the HTML report reads source images "
                       "(default: the dataset the shards read)")
    merge.add_argument("--images", action="append", type=Path, default=[], metavar="FOLDER",
                       help="a folder the HTML report may read the shards' edited images from, besides each shard "
                       "file's own folder (repeatable); a path inside a shard file is never followed elsewhere")
    merge.add_argument("--offline", action="store_true", help="read a hub dataset from the local cache only")
    merge.add_argument("--rootdir", default=".", help="folder holding .editeval/runs/ (default: here)")
    demo = commands.add_parser("demo", help="write a demo folder: a small dataset, edited images, a loopback judge")
    demo.add_argument("folder", metavar="FOLDER", help="a new (or empty) folder")
    demo.add_argument("--benchmark", default="gedit", metavar="NAME",
                      help="the benchmark to try: gedit (default), imgedit, imgedit-uge, kris, risebench, or any other "
                           "whose dataset writer declares a demo")
    args = parser.parse_args(argv)
    if args.command == "demo":
        return _demo(Path(args.folder), args.benchmark)
    if args.command == "agreement":
        return _agreement(args)
    if args.command == "merge":
        return _merge(args)
    return _compare(parser, args)


def _agreement(args) -> int:
    from pytest_editeval import benchmarks
    from pytest_editeval.report.agreement import agreement_json, render_agreement_html, render_agreement_table
    from pytest_editeval.report.runs import load_run
    from pytest_editeval.scoring.agreement import agreements

    try:
        a, b = (load_run(name, Path(args.rootdir)) for name in (args.run_a, args.run_b))
        benchmark = benchmarks.get(a.benchmark, Path(args.rootdir))
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if a.benchmark != b.benchmark:
        print(f"error: {args.run_a} is a {a.benchmark} run and {args.run_b} a {b.benchmark} run: agreement needs "
              "the same rows judged twice", file=sys.stderr)
        return 2
    metrics = [m for m in benchmark.metrics if not m.pooled]
    full = benchmark.scopes[0].name
    if full not in a.aggregates:  # a hand-made or damaged file: one line, never a traceback
        print(f"error: {args.run_a} has no {full!r} aggregates: pass a file written by --editeval-save or "
              "--editeval-json", file=sys.stderr)
        return 2
    subsets = list(a.aggregates[full].subsets)
    results = agreements(a.sample_records(), b.sample_records(), [m.name for m in metrics], subsets)
    if not any(r.n for r in results):
        print(f"error: {args.run_a} and {args.run_b} have no scored row in common (paired by key)", file=sys.stderr)
        return 2
    labels = {m.name: m.label for m in metrics}
    print(f"{printable(a.judge.model)} ({args.run_a}) vs {printable(b.judge.model)} ({args.run_b}): {a.benchmark} "
          f"{printable(a.language)}, paired by row over rows both scored")
    print(render_agreement_table(results, labels))
    if args.json:
        Path(args.json).write_text(agreement_json(results, args.run_a, args.run_b, a, b), encoding="utf-8")
        print(f"agreement written to {args.json}")
    if args.html:
        Path(args.html).write_text(render_agreement_html(results, labels, args.run_a, args.run_b, a, b),
                                   encoding="utf-8")
        print(f"HTML written to {args.html}")
    return 0


def _merge(args) -> int:
    from pytest_editeval.run.shards import MergeRequest, merge

    request = MergeRequest(
        paths=[Path(p) for p in args.shards], thresholds=args.threshold, gate_policy=args.gate,
        compare=args.compare, compare_gates=args.compare_fail, compare_missing=args.compare_missing,
        json_path=args.json, html_path=args.html, save_name=args.save, dataset=args.dataset, offline=args.offline,
        rootdir=Path(args.rootdir), image_folders=args.images)
    try:
        result = merge(request)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for line, _ in result.lines:
        print(line)
    return result.exit_code


def _demo(folder: Path, benchmark: str) -> int:
    from pytest_editeval.testing.demo import demos, write_demo

    if benchmark not in demos():
        print(f"error: no demo for {benchmark!r}: demos exist for {', '.join(demos())}", file=sys.stderr)
        return 2
    try:
        write_demo(folder, benchmark)
    except (FileExistsError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{benchmark} demo written to {folder}: now run  cd {folder} && pytest")
    return 0


def _compare(parser: argparse.ArgumentParser, args) -> int:
    if args.baseline is not None and len(args.runs) == 1:
        baseline_name, new_name = args.baseline, args.runs[0]
    elif args.baseline is None and len(args.runs) == 2:
        baseline_name, new_name = args.runs
    else:
        parser.error("compare takes BASELINE NEW, or NEW with --baseline BASELINE")

    from tabulate import tabulate

    from pytest_editeval import benchmarks
    from pytest_editeval.judges import different_judges
    from pytest_editeval.report.runs import load_run
    from pytest_editeval.report.table import render_comparison
    from pytest_editeval.run.report import results_title
    from pytest_editeval.scoring.compare import compare_runs, different_endpoints, printable, resolve_compare_gate

    try:
        baseline, current = (load_run(name, Path(args.rootdir)) for name in (baseline_name, new_name))
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.baseline is None and _newer(baseline, current):
        # Before 0.2 the order was NEW BASELINE; a reversed pair usually means an old script.
        print(f"note: {baseline_name} is newer than {new_name}; the order is BASELINE NEW (like diff) since "
              "pytest-editeval 0.2. Use --baseline to name the baseline explicitly.", file=sys.stderr)
    try:
        benchmark = benchmarks.get(current.benchmark, Path(args.rootdir))
        full = benchmark.scopes[0].name
        subsets = list(current.aggregates[full].subsets)
        gates = [resolve_compare_gate(g, benchmark, [*subsets, *benchmark.group_names()]) for g in args.compare_fail]
    except (InputError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    metrics = [m for m in benchmark.metrics if not m.pooled]
    labels = {m.name: m.label for m in metrics}
    averaging = benchmark.default_averaging
    deltas, outcomes = compare_runs(current.sample_records(), baseline.sample_records(), gates, subsets,
                                    [m.name for m in metrics], averaging)
    fmt = lambda v, sign="": "-" if v is None else f"{v:{sign}.3f}"  # noqa: E731
    order = [m.name for m in metrics]
    rows = [[labels[d.metric], d.subset or f"OVERALL ({benchmark.averaging_labels[averaging]})", d.n,
             fmt(d.baseline), fmt(d.current), fmt(d.delta, "+"),
             "-" if d.delta is None else f"{d.ci_low:+.3f} to {d.ci_high:+.3f}"]
            for d in sorted(deltas, key=lambda d: (order.index(d.metric), d.subset is None))]
    print(results_title(current, benchmark))  # the new run's title, as its own summary printed it
    print(f"{printable(baseline.model)} ({baseline_name}) -> {printable(current.model)} ({new_name}): "
          f"{current.benchmark} {printable(current.language)}, paired by row over rows both scored")
    print(tabulate(rows, headers=["Metric", "Subset", "n", "Baseline", "New", "New - Baseline", "95% CI"],
                   tablefmt="pretty"))
    judges = different_judges(baseline.judge.model_dump(), current.judge.model_dump())
    if judges:
        print(f"WARNING: {baseline_name} was judged by {judges[0]} and {new_name} by {judges[1]}: judges score on "
              "different scales", file=sys.stderr)
    else:
        endpoints = different_endpoints(baseline.judge.model_dump(), current.judge.model_dump())
        if endpoints:
            print(f"WARNING: {baseline_name} and {new_name} were judged by {printable(current.judge.model)} at two "
                  f"endpoints ({endpoints[0]} and {endpoints[1]}): one model name behind two servers or providers "
                  "may be two judges, on different scales", file=sys.stderr)
    for line, _ in render_comparison(deltas, outcomes, baseline_name, True, labels):
        print(line)
    return 1 if any(not o.passed for o in outcomes) else 0


def _newer(a, b) -> bool:
    stamp_a, stamp_b = (run.meta.get("timestamp") or "" for run in (a, b))
    return bool(stamp_a and stamp_b and stamp_a > stamp_b)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
