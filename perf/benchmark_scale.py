"""Collection and a fully cached re-run at the full row counts of every registered benchmark: GEdit-Bench's 606
English rows, ImgEdit-Bench's 737 and KRIS-Bench's 1,267 (their real per-subset counts), with small images so
that what is timed is the plugin, not image bytes. Run: python perf/benchmark_scale.py

Targets (this 2-core machine): --collect-only < 2 s and a fully cached re-run < 4 s for each, no judge call on
the re-run, torch never imported.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from common import API_KEY, probe_folder, run_pytest

from pytest_editeval.benchmarks.imgedit_official import ROW_COUNTS as IMGEDIT_COUNTS
from pytest_editeval.benchmarks.kris_official import ROW_COUNTS as KRIS_COUNTS
from pytest_editeval.testing import JudgeServer, imgedit_factory, kris_factory
from pytest_editeval.testing.gedit_factory import REAL_COUNTS as GEDIT_COUNTS
from pytest_editeval.testing.gedit_factory import make_gedit_dataset, write_edited_images

COLLECT_TARGET_S, RERUN_TARGET_S = 2.0, 4.0


def prepare(tmp: Path):
    """(name, rows, dataset, images, judge rules) per benchmark."""
    gedit_rows = make_gedit_dataset(tmp / "gedit", rows_per_subset=GEDIT_COUNTS, languages=("en",))
    gedit_images = write_edited_images(tmp / "gedit-edits" / "m", gedit_rows)
    imgedit_rows = imgedit_factory.make_imgedit_dataset(tmp / "imgedit", rows_per_type=dict(IMGEDIT_COUNTS))
    imgedit_images = imgedit_factory.write_imgedit_edits(tmp / "imgedit-edits", imgedit_rows)
    kris_rows = kris_factory.make_kris_dataset(tmp / "kris", rows_per_category=KRIS_COUNTS)
    kris_images = kris_factory.write_kris_edits(tmp / "kris-edits", kris_rows)
    return [
        ("gedit", len(gedit_rows), tmp / "gedit", gedit_images, {}),
        ("imgedit", len(imgedit_rows), tmp / "imgedit", imgedit_images,
         {"scores": imgedit_factory.imgedit_rule_scores, "reply": imgedit_factory.imgedit_reply}),
        ("kris", len(kris_rows), tmp / "kris", kris_images, {"scores": lambda call: [], "reply": kris_factory.kris_reply}),
    ]


def main() -> None:
    lines, met = [], True
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name, count, dataset, images, rules in prepare(tmp):
            with JudgeServer(api_key=API_KEY, **rules) as judge:
                args = [f"--editeval-benchmark={name}", f"--editeval-dataset={dataset}", f"--editeval-images={images}",
                        f"--editeval-judge-url={judge.url}", f"--editeval-cache-dir={tmp / (name + '-cache')}"]
                collect = []
                for attempt in range(3):
                    wall, code, out, _ = run_pytest(probe_folder(tmp / f"{name}-collect{attempt}"), *args,
                                                    "--collect-only")
                    assert code == 0 and f"{count} tests collected" in out and "HEAVY-MODULES: []" in out, out[-2000:]
                    collect.append(wall)
                first, code, out, _ = run_pytest(tmp / f"{name}-first", *args)
                assert code == 0, out[-2000:]
                asked = judge.count
                reruns = []
                for attempt in range(3):
                    wall, code, out, _ = run_pytest(probe_folder(tmp / f"{name}-rerun{attempt}"), *args)
                    assert code == 0 and "judge requests: 0;" in out and "HEAVY-MODULES: []" in out, out[-2000:]
                    reruns.append(wall)
                assert judge.count == asked
            ok = max(collect) < COLLECT_TARGET_S and max(reruns) < RERUN_TARGET_S
            met = met and ok
            lines.append(f"{name:8} {count:5} rows: --collect-only median {statistics.median(collect):.2f} s "
                         f"(max {max(collect):.2f}); first run {first:.1f} s ({asked} judge requests); fully cached "
                         f"re-run median {statistics.median(reruns):.2f} s (max {max(reruns):.2f}), 0 requests, no "
                         f"torch -> {'MET' if ok else 'MISSED'}")
    print("\n".join(lines))
    print(f"targets: collect < {COLLECT_TARGET_S} s, cached re-run < {RERUN_TARGET_S} s -> {'MET' if met else 'MISSED'}")


if __name__ == "__main__":
    main()
