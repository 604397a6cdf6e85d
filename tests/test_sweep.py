"""Sweeps: axes, cells, manifest, resume, grids, shared work, through graphs.sweep /
nodes.sweep_cells and the ``latentgraph sweep`` command (a subprocess, as a user runs it)."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TXT2IMG = ROOT / "resources" / "workflows" / "txt2img.json"
FEW_STEPS = "Scheduler.steps=3"


def cli(*args, cwd=None, pre=""):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    code = f"{pre}import sys; from nodeeditor.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=cwd or ROOT, timeout=600)


@pytest.fixture
def graph():
    import nodes  # noqa: F401
    from graphs import workflow

    g = workflow.load(TXT2IMG)
    g.set_param(g.find_node("Scheduler").id, "steps", 3)
    return g


def test_axis_values_lists_ranges_and_prompt_files(graph, tmp_path):
    from graphs.sweep import parse_axis

    assert parse_axis(graph, "Noise.seed=1:8").values == tuple(range(1, 9))
    assert parse_axis(graph, "Noise.seed=10:4:-3").values == (10, 7, 4)
    assert parse_axis(graph, "UNet denoise.cfg=3,5,7").values == (3.0, 5.0, 7.0)
    assert parse_axis(graph, "UNet denoise.cfg=3.0:7.0:0.5").values == tuple(3.0 + i / 2 for i in range(9))
    assert parse_axis(graph, "UNet denoise.cfg=0.1:0.3:0.1").values == (0.1, 0.2, 0.3)
    assert parse_axis(graph, "Scheduler.name=euler,DDIM").values == ("Euler", "DDIM")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red circle\n\n  a blue square, small \nthree: triangles\n", encoding="utf-8")
    axis = parse_axis(graph, f"Positive prompt.text=@{prompts}")
    assert axis.values == ("a red circle", "a blue square, small", "three: triangles")
    assert axis.address == "Positive prompt.text" and axis.label(3.0) == "Positive prompt.text = 3"
    # relative to the workflow's folder when not found in the working directory
    assert parse_axis(graph, "Positive prompt.text=@prompts.txt", str(tmp_path)).values == axis.values


@pytest.mark.parametrize("spec, message", [
    ("Noise.seed", "expected TITLE.PARAM=VALUES"),
    ("Nope.seed=1,2", "no node with id or title 'Nope'"),
    ("Noise.sead=1,2", "Noise has no param 'sead' (params: seed, control, source, method)"),
    ("Noise.seed=1,x", "value 'x'"),
    ("Noise.seed=1,,2", "an empty value"),
    ("Noise.seed=1:5:0", "non-zero"),
    ("Noise.seed=5:1", "the step goes away from STOP"),
    ("Noise.seed=0:99999", "the limit is 10,000"),
    ("Scheduler.steps=0,3", "expected >= 1"),
    ("Scheduler.name=Euler,Bogus", "expected one of"),
    ("Positive prompt.text=@/no/such/prompts.txt", "cannot read /no/such/prompts.txt"),
])
def test_bad_axes_say_which_and_why(graph, spec, message):
    from graphs.sweep import SweepError, parse_axis

    with pytest.raises(SweepError) as info:
        parse_axis(graph, spec)
    assert f"--axis {spec!r}" in str(info.value) and message in str(info.value)


def test_cross_product_x_fastest_and_cells_are_snapshots(graph):
    from graphs.sweep import Sweep, SweepError, cell_hash

    sweep = Sweep.parse(graph, ["Noise.seed=1:3", "UNet denoise.cfg=3,5", "Scheduler.name=Euler,DDIM"])
    assert sweep.shape() == (3, 2, 2) and len(sweep.cells) == 12
    assert [c.coords for c in sweep.cells[:4]] == [(0, 0, 0), (1, 0, 0), (2, 0, 0), (0, 1, 0)]
    assert sweep.cells[11].values_dict() == {"Noise.seed": 3, "UNet denoise.cfg": 5.0,
                                             "Scheduler.name": "DDIM"}
    cell_graph = sweep.cell_graph(graph, sweep.cells[7])
    assert cell_graph.find_node("Noise").params["seed"] == 2
    assert cell_graph.find_node("Scheduler").params["name"] == "DDIM"
    assert graph.find_node("Noise").params["seed"] == 42  # the source graph is untouched
    hashes = {cell_hash(sweep.cell_graph(graph, c)) for c in sweep.cells}
    assert len(hashes) == 12
    moved = sweep.cell_graph(graph, sweep.cells[7])
    moved.nodes[moved.find_node("Noise").id].pos = (999.0, 1.0)
    assert cell_hash(moved) == cell_hash(cell_graph)  # layout does not decide images
    with pytest.raises(SweepError, match="1 to 3 axes"):
        Sweep.parse(graph, ["Noise.seed=1", "UNet denoise.cfg=1", "Scheduler.steps=1", "Noise.control=fixed"])
    with pytest.raises(SweepError, match="already an axis"):
        Sweep.parse(graph, ["Noise.seed=1,2", "Noise.seed=3"])


def test_sweep_saved_in_workflow_metadata(graph, tmp_path):
    from graphs import workflow
    from graphs.sweep import Sweep, store_in_metadata, sweep_from_metadata

    sweep = Sweep.parse(graph, ["Noise.seed=1:8", "UNet denoise.cfg=3,5,7"], grid=True)
    store_in_metadata(graph, sweep)
    path = tmp_path / "with_sweep.json"
    workflow.save(graph, path)
    again = workflow.load(path)
    assert sweep_from_metadata(again) == (["Noise.seed=1:8", "UNet denoise.cfg=3,5,7"], True)
    assert len(Sweep.parse(again, sweep_from_metadata(again)[0]).cells) == 24


def test_grid_image_size_and_labels():
    from PIL import Image

    from nodes.grid import make_grid

    tile = Image.new("RGB", (64, 64), (0, 128, 255))
    tiles = {(x, y): tile for x in range(3) for y in range(2)}
    tiles[(2, 1)] = "failed"
    columns = [f"Noise.seed = {v}" for v in (1, 2, 3)]
    rows = ["UNet denoise.cfg = 3", "UNet denoise.cfg = 5"]
    grid = make_grid(tiles, columns, rows, "Scheduler.name = Euler")
    bare = make_grid(tiles, ["", "", ""], ["", ""])
    assert grid.width > bare.width and grid.height > bare.height  # room for the labels
    pixels = grid.load()
    # tiles are enlarged to at least 160 px so labels fit; find the first tile's blue
    blue = [(x, y) for x in range(grid.width) for y in range(grid.height) if pixels[x, y] == (0, 128, 255)]
    left, top = min(p[0] for p in blue), min(p[1] for p in blue)
    right = max(p[0] for p in blue)
    assert right - left + 1 >= 3 * 160
    ink = lambda box: sum(1 for x in range(box[0], box[2]) for y in range(box[1], box[3])
                          if sum(pixels[x, y]) < 200)
    assert ink((left, 0, left + 160, top)) > 30  # column label above the first column
    assert ink((0, top, left, top + 160)) > 30  # row label beside the first row
    assert ink((0, 0, grid.width, 24)) > 30  # the Z title
    assert grid.getpixel((right - 5, grid.height - 20)) != (0, 128, 255)  # the failed tile


def test_cli_sweep_shares_work_writes_manifest_grid_and_resumes(tmp_path):
    out = tmp_path / "sweep"
    args = ("sweep", TXT2IMG, "--axis", "Noise.seed=1:2", "--axis", "UNet denoise.cfg=3,5",
            "--set", FEW_STEPS, "--output-dir", out, "--grid")
    proc = cli(*args)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(out / "sweep.json"), str(out / "grid_z000.png")]
    # one model load, each prompt encoded once, the noise once per seed
    for text in ("Load model 1", "Text encode 2", "Noise 2", "UNet denoise 4", "VAE decode 4",
                 "4 done, 0 already done, 0 failed"):
        assert text in proc.stderr
    manifest = json.loads((out / "sweep.json").read_text())
    assert [a["address"] for a in manifest["axes"]] == ["Noise.seed", "UNet denoise.cfg"]
    cells = manifest["cells"]
    assert [c["values"] for c in cells] == [
        {"Noise.seed": 1, "UNet denoise.cfg": 3.0}, {"Noise.seed": 2, "UNet denoise.cfg": 3.0},
        {"Noise.seed": 1, "UNet denoise.cfg": 5.0}, {"Noise.seed": 2, "UNet denoise.cfg": 5.0}]
    assert all(c["status"] == "done" and c["error"] is None for c in cells)
    assert [c["files"] for c in cells] == [[f"latentgraph_c000{i}.png"] for i in range(4)]
    assert manifest["grids"] == ["grid_z000.png"]
    from PIL import Image

    from graphs.pngmeta import WORKFLOW_KEY

    with Image.open(out / "latentgraph_c0003.png") as image:
        embedded = json.loads(image.text[WORKFLOW_KEY])
    seeds = [n["params"]["seed"] for n in embedded["nodes"] if n["type"] == "sd.noise"]
    assert seeds == [2]  # the cell's graph, not the workflow's
    with Image.open(out / "grid_z000.png") as grid:
        assert grid.width > 2 * 160 and grid.height > 2 * 160
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("latentgraph_*.png")}
    again = cli(*args)
    assert again.returncode == 0, again.stderr
    assert "0 done, 4 already done" in again.stderr and "node runs: none" in again.stderr
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("latentgraph_*.png")} == stamps
    # a cell whose file went missing is computed again, and only that one
    (out / "latentgraph_c0002.png").unlink()
    third = cli(*args)
    assert "1 done, 3 already done" in third.stderr and "UNet denoise 1" in third.stderr


def test_interrupted_sweep_resumes_without_recomputing(graph, tmp_path):
    from graphs.sweep import Sweep
    from nodes.sweep_cells import LocalBackend, run_sweep

    sweep = Sweep.parse(graph, ["Noise.seed=1:3", "UNet denoise.cfg=3,5"])
    first = LocalBackend()

    def stop_after_two(event, info):
        if event == "done" and info["cell"].index == 1:
            first.cancel()

    report = run_sweep(graph, sweep, tmp_path, first, on_progress=stop_after_two)
    assert report.cancelled and report.done == 2
    manifest = json.loads((tmp_path / "sweep.json").read_text())
    assert [c["index"] for c in manifest["cells"]] == [0, 1]
    second = LocalBackend()
    report = run_sweep(graph, sweep, tmp_path, second)
    assert not report.cancelled and (report.skipped, report.done) == (2, 4)
    assert report.node_runs["UNet denoise"] == 4  # the two finished cells did not run again
    assert report.written == [f"latentgraph_c000{i}.png" for i in range(2, 6)]
    manifest = json.loads((tmp_path / "sweep.json").read_text())
    assert [c["index"] for c in manifest["cells"]] == list(range(6))
    assert all((tmp_path / c["files"][0]).is_file() for c in manifest["cells"])


def test_prompt_axis_encodes_each_prompt_once(graph, tmp_path):
    from graphs.sweep import Sweep
    from nodes.sweep_cells import LocalBackend, run_sweep

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red circle\na blue square\n")
    sweep = Sweep.parse(graph, [f"Positive prompt.text=@{prompts}", "Noise.seed=1,2"])
    report = run_sweep(graph, sweep, tmp_path / "out", LocalBackend())
    assert report.done == 4
    runs = report.node_runs
    assert (runs["Load model"], runs["Text encode"], runs["Noise"], runs["UNet denoise"]) == (1, 3, 2, 4)


def test_a_failing_cell_is_recorded_and_the_sweep_goes_on(graph, tmp_path):
    from graphs.sweep import Sweep
    from nodes.sweep_cells import LocalBackend, run_sweep

    missing = tmp_path / "no-such-model"
    sweep = Sweep.parse(graph, [f"Load model.source=bundled,{missing}", "Noise.seed=1,2"])
    report = run_sweep(graph, sweep, tmp_path / "out", LocalBackend())
    assert (report.done, report.failed) == (2, 2)
    cells = json.loads((tmp_path / "out" / "sweep.json").read_text())["cells"]
    assert [c["status"] for c in cells] == ["done", "failed", "done", "failed"]
    error = cells[1]["error"]
    assert f"model not found: {missing}" in error and "Load model" in error and "(on worker " in error
    assert cells[1]["files"] == []


def test_ctrl_c_cancels_the_sweep_with_exit_130(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "nodeeditor.cli", "sweep", str(TXT2IMG), "--axis", "Noise.seed=1:40",
         "--set", FEW_STEPS, "--output-dir", str(tmp_path)],
        stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    for line in proc.stderr:
        if line.startswith("[2/40]"):
            break
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "cancelled:" in err and "rerun the same command to resume" in err
    manifest = json.loads((tmp_path / "sweep.json").read_text())
    assert 2 <= len(manifest["cells"]) < 40
    assert all(c["status"] == "done" for c in manifest["cells"])


def test_sweep_from_saved_metadata_and_bad_input(tmp_path):
    saved = tmp_path / "wf.json"
    saved.write_text(TXT2IMG.read_text())
    proc = cli("sweep", saved, "--output-dir", tmp_path / "o")
    assert proc.returncode == 2 and "no --axis given and no sweep saved" in proc.stderr
    proc = cli("sweep", saved, "--axis", "Noise.seed=1,x", "--output-dir", tmp_path / "o")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: --axis 'Noise.seed=1,x': value 'x': invalid literal for int() " \
                                  "with base 0: 'x'"
    proc = cli("sweep", saved, "--axis", "Noise.seed=5,6", "--set", FEW_STEPS, "--save-sweep",
               "--output-dir", tmp_path / "o")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(saved.read_text())["metadata"]["sweep"] == {"axes": ["Noise.seed=5,6"], "grid": False}
    again = cli("sweep", saved, "--set", FEW_STEPS, "--output-dir", tmp_path / "o")
    assert again.returncode == 0 and "0 done, 2 already done" in again.stderr


def test_ray_missing_says_how_to_install(tmp_path):
    # A real failed import: sys.modules["ray"] = None makes ``import ray`` raise ImportError.
    proc = cli("sweep", TXT2IMG, "--axis", "Noise.seed=1,2", "--output-dir", tmp_path, "--ray", "local",
               pre="import sys; sys.modules['ray'] = None; ")
    assert proc.returncode == 2
    assert "pip install latentgraph[ray]" in proc.stderr and "Traceback" not in proc.stderr


def test_ray_backend_imports_ray_lazily_and_prefers_loaded_models():
    code = "import sys, nodes.ray_backend, nodes.sweep_cells, graphs.sweep; print('ray' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.stdout.strip() == "False", proc.stderr
    from nodes.ray_backend import pick_job
    from nodes.sweep_cells import Job

    pending = [Job(i, {}, "", key) for i, key in enumerate(["a", "b", "a", "c"])]
    assert pick_job({"c"}, set(), pending) == 3  # the worker that has model c gets c's cell
    assert pick_job(set(), {"a"}, pending) == 1  # a fresh worker takes a model nobody is loading
    assert pick_job(set(), {"a", "b", "c"}, pending) == 0
