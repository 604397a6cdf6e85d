"""The diagnostic scripts in scripts/ run on the bundled model and report what they promise."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_probe_sampler_endings_scores_each_shape_after_the_last_k_steps():
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "probe_sampler_endings.py"), "--ks", "0,2",
                           "--per-template", "2"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    results = report["shape_after_last_k_steps"]
    assert set(results) == {"0", "2"} and report["steps"] == 20
    for scores in results.values():
        assert set(scores) >= {"shape"} and all(0.0 <= v <= 1.0 for v in scores.values())
        assert set(scores) - {"shape"} <= {"circle", "square", "triangle", "star"}
    # encode -> decode of rendered scenes is the decoder's ceiling: the circles of these scenes survive it
    assert results["0"]["circle"] == 1.0
