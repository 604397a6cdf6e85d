"""Issue 25, files: saves that cannot be subverted by planted links, keep the file's mode, write
through the user's symlinks, never share a name between two writers, and refuse a bad output
folder before anything runs."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from graphs import Executor, Graph, safe_io, workflow

ROOT = Path(__file__).resolve().parent.parent
TXT2IMG = ROOT / "resources" / "workflows" / "txt2img.json"


def cli(*args, cwd=None, timeout=600):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "nodeeditor.cli", *args], capture_output=True,
                          env=env, cwd=cwd or ROOT, timeout=timeout)


def _png(path: Path, colour=(10, 20, 30), size=(16, 16)) -> Path:
    from PIL import Image

    Image.new("RGB", size, colour).save(path)
    return path


def _save_graph(image_path: Path, prefix: str = "latentgraph") -> tuple[Graph, str]:
    import nodes  # noqa: F401  (registers the node types)

    graph = Graph()
    load = graph.add_node(graph.create_node("image.load", params={"path": str(image_path)}))
    save = graph.add_node(graph.create_node("image.save", params={"prefix": prefix}))
    graph.connect(load.id, "image", save.id, "image")
    return graph, save.id


def _run_save(image_path: Path, out: Path, prefix: str = "latentgraph"):
    graph, save = _save_graph(image_path, prefix)
    result = Executor(settings={"output_dir": str(out)}).run(graph)
    return result, save


# ----- links planted in the output folder -------------------------------------------------------
def test_save_image_never_follows_a_link_planted_at_the_temp_or_final_name(tmp_path):
    out, outside = tmp_path / "out", tmp_path / "outside.txt"
    out.mkdir()
    outside.write_text("precious")
    # the old predictable temp name, and the final name itself
    os.symlink(outside, out / ".latentgraph_00001.png.tmp")
    os.symlink(outside, out / "latentgraph_00001.png")
    result, save = _run_save(_png(tmp_path / "in.png"), out)
    assert result.status == "finished", result.error
    assert outside.read_text() == "precious"
    assert result.outputs[save]["paths"] == [str(out / "latentgraph_00002.png")]
    assert (out / "latentgraph_00001.png").is_symlink()
    assert not [p for p in os.listdir(out) if p.endswith(".tmp") and not p.startswith(".latentgraph_00001")]


def test_atomic_write_skips_a_link_planted_at_its_random_temp_name(tmp_path, monkeypatch):
    """An attacker who guesses the random temp name still cannot redirect the write."""
    import secrets

    target, outside = tmp_path / "flow.json", tmp_path / "outside.txt"
    outside.write_text("precious")
    os.symlink(outside, tmp_path / ".flow.json.guessed.tmp")
    tokens = iter(["guessed", "fresh"])
    monkeypatch.setattr(secrets, "token_hex", lambda n: next(tokens))
    safe_io.write_text_atomic(target, "new")
    assert target.read_text() == "new" and outside.read_text() == "precious"
    assert (tmp_path / ".flow.json.guessed.tmp").is_symlink()
    assert not (tmp_path / ".flow.json.fresh.tmp").exists()


# ----- saving over an existing workflow --------------------------------------------------------
def test_saving_over_a_workflow_keeps_its_mode(tmp_path, graph):
    path = tmp_path / "flow.json"
    workflow.save(graph, path)
    os.chmod(path, 0o664)
    workflow.save(graph, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o664
    os.chmod(path, 0o600)
    workflow.atomic_write_text(path, "{}")  # what the editor's autosave calls
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_new_workflow_gets_the_umask_mode(tmp_path, graph):
    old = os.umask(0o027)
    try:
        workflow.save(graph, tmp_path / "new.json")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.json").stat().st_mode) == 0o640


def test_saving_through_a_symlinked_workflow_updates_its_target(tmp_path, graph, kit):
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    target, link = real_dir / "flow.json", tmp_path / "flow.json"
    workflow.save(graph, target)
    os.symlink(target, link)
    graph.add_node(graph.create_node("test.const", title="added"))
    workflow.save(graph, link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert "added" in target.read_text()
    assert workflow.load(link, kit.registry).find_node("added")
    assert sorted(os.listdir(tmp_path)) == ["flow.json", "real"]
    assert os.listdir(real_dir) == ["flow.json"]  # no temp file left beside the target


def test_saving_over_a_folder_is_refused_and_leaves_no_temp(tmp_path, graph):
    (tmp_path / "flow.json").mkdir()
    with pytest.raises(OSError):
        workflow.save(graph, tmp_path / "flow.json")
    assert os.listdir(tmp_path) == ["flow.json"]


def test_exported_model_folder_gets_the_umask_mode_or_keeps_the_old_one(tmp_path):
    """scripts/train_bundled_model.py swaps its export in with safe_io.replace_dir."""
    import tempfile

    out = tmp_path / "model"
    old = os.umask(0o022)
    try:
        staging = Path(tempfile.mkdtemp(dir=tmp_path))
        (staging / "a.json").write_text("1")
        safe_io.replace_dir(staging, out)
        assert stat.S_IMODE(out.stat().st_mode) == 0o755 and (out / "a.json").read_text() == "1"
        os.chmod(out, 0o750)
        staging = Path(tempfile.mkdtemp(dir=tmp_path))
        (staging / "b.json").write_text("2")
        safe_io.replace_dir(staging, out)
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o750
    assert sorted(os.listdir(out)) == ["b.json"] and os.listdir(tmp_path) == ["model"]


# ----- names ----------------------------------------------------------------------------------
def test_a_245_character_prefix_is_shortened_safely_not_an_oserror(tmp_path):
    result, save = _run_save(_png(tmp_path / "in.png"), tmp_path / "out", prefix="p" * 245)
    assert result.status == "finished", result.error
    (path,) = result.outputs[save]["paths"]
    assert Path(path).name == "p" * 200 + "_00001.png" and Path(path).is_file()
    assert any("prefix cut" in w for w in result.warnings[save])


def test_safe_io_refuses_a_name_the_file_system_cannot_hold(tmp_path):
    with pytest.raises(ValueError, match="longer than the 255-byte limit"):
        safe_io.write_new(tmp_path / ("x" * 300), b"data")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("make, message", [
    (lambda tmp: (tmp / "file").write_text("x") and tmp / "file", "is a regular file, not a folder"),
    (lambda tmp: (tmp / "file").write_text("x") and tmp / "file" / "sub", "is under a file"),
    (lambda tmp: Path("/dev/null"), "is a character device, not a folder"),
])
def test_bad_output_dir_is_refused_before_anything_runs(tmp_path, make, message):
    out = make(tmp_path)
    proc = cli("run", str(TXT2IMG), "--output-dir", str(out), timeout=120)
    stderr = proc.stderr.decode()
    assert proc.returncode == 2, stderr
    assert stderr.startswith(f"error: --output-dir {out}: ") and message in stderr
    assert "Load model" not in stderr and "Traceback" not in stderr


# ----- two writers, one folder ----------------------------------------------------------------
_CLAIMER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from graphs import safe_io
    from nodes.images import candidate_names
    folder, writer, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    for index in range(count):
        data = f"{writer}:{index}".encode() * 2000
        path = safe_io.write_unique(folder, candidate_names(folder, "latentgraph"), data)
        print(path, f"{writer}:{index}", flush=True)
""")


def test_four_processes_claiming_names_in_one_folder_lose_nothing(tmp_path):
    """The Save image path (candidate names + exclusive claim) from 4 processes at once."""
    out = tmp_path / "out"
    out.mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", _CLAIMER, str(out), f"w{i}", "50"],
                              stdout=subprocess.PIPE, text=True, cwd=ROOT) for i in range(4)]
    reported = {}
    for proc in procs:
        stdout, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        for line in stdout.splitlines():
            path, tag = line.split(" ")
            assert path not in reported
            reported[path] = tag
    assert len(reported) == 200 == len(os.listdir(out))
    for path, tag in reported.items():
        assert Path(path).read_bytes() == tag.encode() * 2000  # each path holds its own data


def test_threads_saving_images_with_one_prefix_keep_every_image(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image

    out = tmp_path / "out"
    colours = [(i * 30, 255 - i * 30, 7) for i in range(8)]
    sources = [_png(tmp_path / f"in{i}.png", c) for i, c in enumerate(colours)]

    def worker(index):
        paths = []
        for _ in range(5):
            result, save = _run_save(sources[index], out)
            assert result.status == "finished", result.error
            paths += result.outputs[save]["paths"]
        return index, paths

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(worker, range(8)))
    every = [p for _, paths in results for p in paths]
    assert len(set(every)) == 40 == len(os.listdir(out))
    for index, paths in results:
        for path in paths:
            assert Image.open(path).getpixel((3, 3)) == colours[index]


def test_two_concurrent_cli_runs_into_one_folder_keep_both_images(tiny_sd, tmp_path):
    from graphs import pngmeta

    out = tmp_path / "out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    procs = [subprocess.Popen(
        [sys.executable, "-m", "nodeeditor.cli", "run", str(TXT2IMG), "--set",
         f"Load model.source={tiny_sd}", "--set", "Empty latent.width=64", "--set",
         "Empty latent.height=64", "--set", "Scheduler.steps=2", "--set", f"Noise.seed={seed}",
         "--output-dir", str(out), "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=env, cwd=ROOT) for seed in (11, 22)]
    reported = []
    for seed, proc in zip((11, 22), procs):
        stdout, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 0, stderr
        (path,) = stdout.split()
        assert json.loads(pngmeta.read_text_chunks(path)[pngmeta.PARAMETERS_KEY])["seed"] == seed
        reported.append(path)
    assert len(set(reported)) == 2 and sorted(os.listdir(out)) == sorted(
        Path(p).name for p in reported)
