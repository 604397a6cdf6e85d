"""Sweeps on a Ray cluster: one local cluster of 2 CPU workers for the whole module (starting
Ray costs seconds on this 2-core machine), joined by the CLI and by the backend directly."""

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

ROOT = Path(__file__).resolve().parent.parent
TXT2IMG = ROOT / "resources" / "workflows" / "txt2img.json"


@pytest.fixture(scope="module")
def cluster():
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    temp_dir = f"/tmp/ray-lgt-{os.getpid()}"  # short: Ray's socket paths have a length limit
    context = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                       logging_level="WARNING", _temp_dir=temp_dir)
    yield context.address_info["gcs_address"]
    ray.shutdown()
    shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture
def graph():
    import nodes  # noqa: F401
    from graphs import workflow

    g = workflow.load(TXT2IMG)
    g.set_param(g.find_node("Scheduler").id, "steps", 3)
    return g


def _pixels(path):
    from PIL import Image

    with Image.open(path) as image:
        return image.convert("RGB").tobytes()


def test_ray_cli_sweep_matches_the_local_sweep(cluster, graph, tmp_path):
    from graphs.sweep import Sweep
    from nodes.sweep_cells import LocalBackend, run_sweep

    axes = ["Noise.seed=1:2", "UNet denoise.cfg=3,5"]
    import torch

    # The Ray workers run torch on one thread each; the local reference must too, since a
    # different thread count sums floats in another order and can move a pixel by one.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        local = run_sweep(graph, Sweep.parse(graph, axes), tmp_path / "local", LocalBackend())
    finally:
        torch.set_num_threads(threads)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "nodeeditor.cli", "sweep", str(TXT2IMG), "--axis", axes[0], "--axis", axes[1],
         "--set", "Scheduler.steps=3", "--output-dir", str(tmp_path / "ray"), "--ray", cluster],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "4 done, 0 already done, 0 failed" in proc.stderr
    load_runs = int(proc.stderr.split("Load model ")[1].split(",")[0])
    assert 1 <= load_runs <= 2  # once per worker at most, not once per cell
    local_manifest = json.loads((tmp_path / "local" / "sweep.json").read_text())
    ray_manifest = json.loads((tmp_path / "ray" / "sweep.json").read_text())
    assert [(c["values"], c["files"], c["hash"], c["status"]) for c in ray_manifest["cells"]] == \
        [(c["values"], c["files"], c["hash"], c["status"]) for c in local_manifest["cells"]]
    assert local.written == [c["files"][0] for c in ray_manifest["cells"]]
    for name in local.written:
        assert _pixels(tmp_path / "ray" / name) == _pixels(tmp_path / "local" / name), name


def test_killed_worker_cell_is_retried_and_bad_cell_recorded(cluster, graph, tmp_path):
    from graphs.sweep import Sweep
    from nodes.ray_backend import RayBackend
    from nodes.sweep_cells import run_sweep

    graph.set_param(graph.find_node("Scheduler").id, "steps", 20)  # long enough to die mid-cell
    missing = tmp_path / "no-such-model"
    sweep = Sweep.parse(graph, ["Noise.seed=1:4", f"Load model.source=bundled,{missing}"])
    backend = RayBackend(cluster)
    assert len(backend.workers) == 2
    pids = {}
    for worker in backend.workers:
        backend.worker_info(worker)
        pids[worker.name] = worker.pid
    killed = []
    events = []

    def on_progress(event, info):
        events.append((event, info["cell"].index))
        # the third cell with a real model, once both workers have loaded theirs
        if event == "started" and info["cell"].index == 2 and not killed and info["worker"] in pids:
            pid = pids[info["worker"]]
            killed.append((2, pid))
            threading.Timer(0.15, os.kill, (pid, 9)).start()

    try:
        report = run_sweep(graph, sweep, tmp_path / "out", backend, on_progress=on_progress)
    finally:
        backend.close()
    assert killed, events
    assert backend.restarts == 1 and backend.attempts[2] == 2
    assert (report.done, report.failed, report.cancelled) == (4, 4, False)
    assert len(report.written) == len(set(report.written)) == 4  # none written twice
    cells = json.loads((tmp_path / "out" / "sweep.json").read_text())["cells"]
    assert [c["index"] for c in cells] == list(range(8))
    for cell in cells:
        if cell["values"]["Load model.source"] == "bundled":
            assert cell["status"] == "done" and (tmp_path / "out" / cell["files"][0]).is_file()
        else:
            assert cell["status"] == "failed" and cell["files"] == []
            assert f"model not found: {missing}" in cell["error"]
            assert f"(on worker {cell['worker']})" in cell["error"]
    retried = cells[2]
    assert retried["status"] == "done" and retried["worker"] != next(
        name for name, pid in pids.items() if pid == killed[0][1])


def test_workers_get_the_models_folder_of_the_sweep(cluster, tmp_path, monkeypatch):
    """Set after the cluster started (as on a cluster someone else runs): the workers still get it."""
    from nodes.model_folders import ENV_MODELS
    from nodes.ray_backend import RayBackend

    monkeypatch.setenv(ENV_MODELS, str(tmp_path))
    backend = RayBackend(cluster, max_workers=1)
    try:
        worker = backend.workers[0]
        assert backend.ray.get(worker.handle.info.remote())["models_dir"] == str(tmp_path)
    finally:
        backend.close()
