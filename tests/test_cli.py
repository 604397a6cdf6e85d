"""The latentgraph command line, run as a user would (a subprocess)."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TXT2IMG = ROOT / "resources" / "workflows" / "txt2img.json"


def cli(*args, cwd=None):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "nodeeditor.cli", *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=cwd or ROOT, timeout=600)


def test_validate_ok():
    proc = cli("validate", TXT2IMG)
    assert proc.returncode == 0 and "ok" in proc.stdout


def test_validate_bad_file_one_line_exit_2(tmp_path):
    data = json.loads(TXT2IMG.read_text())
    steps_node = next(i for i, n in enumerate(data["nodes"]) if n["type"] == "sd.scheduler")
    data["nodes"][steps_node]["params"]["steps"] = 0
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    proc = cli("validate", bad)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: {bad}: nodes[{steps_node}].params.steps: expected >= 1, got 0"]
    assert "Traceback" not in proc.stderr


def test_validate_not_json(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_bytes(b"\xff\xfe garbage")
    proc = cli("validate", bad)
    assert proc.returncode == 2 and proc.stderr.startswith(f"error: {bad}: not UTF-8")


def test_nodes_json_lists_the_catalogue():
    proc = cli("nodes", "--json")
    assert proc.returncode == 0
    types = {t["type_id"]: t for t in json.loads(proc.stdout)["nodes"]}
    for type_id in ("sd.load_model", "sd.text_encode", "sd.empty_latent", "sd.noise",
                    "sd.scheduler", "sd.unet_denoise", "sd.vae_decode", "sd.vae_encode",
                    "image.load", "image.save", "image.preview", "sd.latent_inspect",
                    "value.int", "value.float", "value.string", "value.seed"):
        assert type_id in types
    names = next(p for p in types["sd.scheduler"]["params"] if p["name"] == "name")["choices"]
    for name in ("Euler", "Euler a", "DDIM", "DPM++ 2M", "DPM++ 2M Karras", "DPM++ SDE", "UniPC",
                 "LMS", "Heun", "PNDM"):
        assert name in names


def test_run_headless_contract(tiny_sd, tmp_path):
    out = tmp_path / "out"
    proc = cli("run", TXT2IMG, "--set", f"Load model.source={tiny_sd}",
               "--set", "Positive prompt.text=a red circle", "--set", "Negative prompt.text=",
               "--set", "Empty latent.width=64", "--set", "Empty latent.height=64",
               "--set", "Noise.seed=42", "--set", "Scheduler.name=dpm++ 2m karras",
               "--set", "Scheduler.steps=3", "--set", "UNet denoise.cfg=7.5",
               "--output-dir", out)
    assert proc.returncode == 0, proc.stderr
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == 1 and str(pngs[0]) in proc.stdout
    from PIL import Image

    assert Image.open(pngs[0]).size == (64, 64)
    assert "UNet denoise" in proc.stderr and "3/3" in proc.stderr


@pytest.mark.parametrize("assignment, message", [
    ("Nobody.seed=1", "no node with id or title 'Nobody'"),
    ("Noise.colour=1", "Noise has no param 'colour'"),
    ("Noise.seed=abc", "invalid literal"),
    ("Scheduler.name=Nonsense", "expected one of"),
    ("Scheduler.steps=0", "expected >= 1"),
    ("justtext", "expected TITLE.PARAM=VALUE"),
])
def test_run_bad_set_exit_2(assignment, message):
    proc = cli("run", TXT2IMG, "--set", assignment)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_run_failing_node_exit_1(tmp_path):
    proc = cli("run", TXT2IMG, "--set", f"Load model.source={tmp_path / 'missing'}",
               "--output-dir", tmp_path)
    assert proc.returncode == 1
    assert "node 'Load model'" in proc.stderr and "model not found" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_img2img_workflow_runs_from_another_folder(tiny_sd, tmp_path):
    """The bundled img2img input is found next to the workflow, whatever the working folder."""
    img2img = ROOT / "resources" / "workflows" / "img2img.json"
    proc = cli("run", img2img, "--set", f"Load model.source={tiny_sd}", "--set",
               "Scheduler.steps=4", "--output-dir", tmp_path / "out", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert len(list((tmp_path / "out").glob("*.png"))) == 1


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_printer_puts_a_status_on_its_own_line_below_a_bar_in_progress():
    import nodes  # noqa: F401  (registers the node types)
    from graphs import Graph
    from graphs.events import NodeStatus, Progress
    from nodeeditor.cli import ProgressPrinter

    graph = Graph()
    node = graph.add_node(graph.create_node("sd.unet_denoise", (0, 0)))
    stream = _Terminal()
    printer = ProgressPrinter(graph, stream)
    printer(Progress(node.id, 3, 20))
    printer(NodeStatus(node.id, "compiling the UNet for 2x4x64x64"))
    printer(Progress(node.id, 20, 20))
    lines = stream.getvalue().split("\n")
    assert lines[0].endswith("3/20")
    assert lines[1] == "UNet denoise: compiling the UNet for 2x4x64x64"
    assert lines[2].lstrip("\r").endswith("20/20")
