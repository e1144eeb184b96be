"""The GPU check of model mode (issue 3), as one prepared script for a machine with a CUDA GPU.

It builds a tiny FLUX.1 Kontext pipeline, saves it, and runs the plugin end to end on `cuda` in bfloat16
(through the real from_pretrained path) with batch sizes 1, 2 and 4, against the loopback judge. It prints
each run's exit code, wall time, images generated, and whether the batched images equal batch 1's.

On the lent device machine (see the device tool's README), diffusers travels as wheels:
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 ... -d .whl \\
        diffusers==0.42.1 transformers==5.24.0 importlib-metadata zipp lazy-importer regex pytest-editeval deps
then, in the run:  pip install --target /tmp/site .whl/*.whl && PYTHONPATH=/tmp/site:. python perf/gpu_check.py
Run: python perf/gpu_check.py [cpu]   (exits 1 if a run failed; `cpu` checks the script on any machine)
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pytest_editeval.testing import JudgeServer
from pytest_editeval.testing.gedit_factory import make_gedit_dataset
from pytest_editeval.testing.tiny_pipelines import FAST_CONFIGS, build_flux_kontext


def main(device: str) -> int:
    import torch

    if device == "cuda":
        assert torch.cuda.is_available(), "no CUDA device visible"
        print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}")
    failed = False
    with tempfile.TemporaryDirectory() as tmp, JudgeServer(api_key="sk-gpu") as judge:
        root = Path(tmp)
        make_gedit_dataset(root / "ds", rows_per_subset=4, languages=("en",), size=(64, 64))
        model = build_flux_kontext(root / "flux")
        config = {**FAST_CONFIGS["FluxKontextPipeline"], "height": 32, "width": 32, "max_area": 1024}
        digests = {}
        for batch in (1, 2, 4):
            out = root / f"out{batch}"
            env = {**os.environ, "EDITEVAL_JUDGE_API_KEY": "sk-gpu"}
            start = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--editeval-benchmark=gedit",
                 f"--editeval-dataset={root / 'ds'}", f"--editeval-model={model}", f"--editeval-device={device}",
                 "--editeval-precision=bfloat16", f"--editeval-batch-size={batch}",
                 f"--editeval-generation-config={json.dumps(config)}", f"--editeval-output-dir={out}",
                 f"--editeval-cache-dir={root / f'cache{batch}'}", f"--editeval-judge-url={judge.url}"],
                cwd=root, env=env, capture_output=True, text=True)
            wall = time.perf_counter() - start
            images = sorted(p for p in out.rglob("*.png") if not p.stem.endswith("_SRCIMG"))
            digests[batch] = [hashlib.sha256(p.read_bytes()).hexdigest() for p in images]
            summary = [line for line in proc.stdout.splitlines() if line.startswith(("generated", "rows:"))]
            print(f"batch {batch}: exit {proc.returncode}, {wall:.1f} s, {len(images)} images; " + "; ".join(summary))
            failed |= proc.returncode != 0 or len(images) != 44
            if proc.returncode != 0:
                print(proc.stdout[-3000:], proc.stderr[-2000:])
        for batch in (2, 4):
            same = sum(a == b for a, b in zip(digests[1], digests[batch]))
            print(f"batch {batch} vs batch 1: {same} of {len(digests[1])} images byte-identical")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "cuda"))  # `cpu` checks the script itself anywhere
