"""No abnormal exit, ever: the marker-API example and a plain gate run N times each (default 30) from a cold
cache, against a loopback judge with a little latency so that plugin threads are busy near the end of the
session. Before the fix about 1 run in 9 of the marker example aborted after "3 passed" with exit 134
("terminate called without an active exception"): a daemon judge thread was still inside native code while
the interpreter shut down. Counts every exit code other than 0/1, every signal, and any such message.

Run: python perf/exit_check.py [N]      (exits 1 if any run ended abnormally)
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

from common import API_KEY, run_pytest

from pytest_editeval.testing import JudgeServer
from pytest_editeval.testing.gedit_factory import make_gedit_dataset, write_edited_images

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
ABNORMAL_TEXT = ("terminate called", "Fatal Python error", "Segmentation fault", "core dumped")


def main(runs: int) -> int:
    with tempfile.TemporaryDirectory() as tmp, JudgeServer(api_key=API_KEY, latency=0.05) as judge:
        tmp = Path(tmp)
        rows = make_gedit_dataset(tmp / "data", rows_per_subset=4, languages=("en",))
        edits = write_edited_images(tmp / "edits" / "my-model", rows, scale=1.5)
        common = [f"--editeval-dataset={tmp / 'data'}", f"--editeval-images={edits}",
                  f"--editeval-judge-url={judge.url}"]
        outcomes: dict[str, Counter] = {"marker example": Counter(), "plain gate": Counter()}
        abnormal = []
        for attempt in range(runs):
            for name, folder, args in (
                    ("marker example", tmp / f"marker{attempt}", []),
                    ("plain gate", tmp / f"gate{attempt}", ["--editeval-benchmark=gedit",
                                                            "--editeval-threshold=overall>=1"])):
                folder.mkdir()
                if name == "marker example":
                    shutil.copy(EXAMPLES / "marker_api" / "test_checkpoint_quality.py", folder)
                cache = folder / "cache"  # cold every time
                wall, code, out, _ = run_pytest(folder, *common, *args, f"--editeval-cache-dir={cache}")
                outcomes[name][code] += 1
                if code not in (0, 1) or any(text in out for text in ABNORMAL_TEXT):
                    abnormal.append((name, attempt, code, out[-1500:]))
            print(f"run {attempt + 1}/{runs}: " + "; ".join(f"{n} exit codes {dict(c)}" for n, c in outcomes.items()),
                  flush=True)
    for name, attempt, code, tail in abnormal:
        print(f"\nABNORMAL: {name}, run {attempt + 1}, exit {code}\n{tail}")
    print(f"\n{2 * runs} runs, {len(abnormal)} abnormal exits -> {'MET' if not abnormal else 'MISSED'}")
    return 1 if abnormal else 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 30))
