"""The bundled inpaint and ControlNet workflows, headless: inpainting repaints only under its mask
on the bundled model; the ControlNet workflow names the files it needs."""

import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / "resources" / "workflows"


def run_cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "nodeeditor.cli", "run", *map(str, args), "--quiet"],
                          capture_output=True, text=True, cwd=cwd, timeout=600)


def test_the_bundled_inpaint_workflow_repaints_under_its_mask_only(tmp_path):
    proc = run_cli(WORKFLOWS / "inpaint.json", "--output-dir", tmp_path)
    assert proc.returncode == 0, proc.stderr
    (path,) = tmp_path.glob("*.png")
    out = np.asarray(Image.open(path).convert("RGB")).astype(int)
    source = np.asarray(Image.open(WORKFLOWS / "img2img_input.png").convert("RGB")).astype(int)
    mask = np.asarray(Image.open(WORKFLOWS / "inpaint_mask.png")) > 127
    assert out.shape == source.shape == (*mask.shape, 3)
    # far outside the (grown) mask the picture stays: the blue square is still there
    square = (slice(24, 38), slice(41, 54))
    assert np.abs(out[square] - source[square]).mean() < 40
    # under the mask the red circle is repainted (the prompt asks for a green triangle there)
    circle = (slice(24, 38), slice(10, 24))
    assert np.abs(out[circle] - source[circle]).mean() > 60


def test_the_controlnet_workflow_names_the_files_to_set(tmp_path, tiny_sd):
    proc = run_cli(WORKFLOWS / "controlnet_canny.json", "--output-dir", tmp_path)
    assert proc.returncode != 0
    assert "node 'SD 1.5 checkpoint (set source)'" in proc.stderr
    assert "v1-5-pruned-emaonly.safetensors" in proc.stderr
    proc = run_cli(WORKFLOWS / "controlnet_canny.json", "--output-dir", tmp_path,
                   "--set", f"SD 1.5 checkpoint (set source).source={tiny_sd}")
    assert proc.returncode != 0
    assert "node 'Canny ControlNet (set source)'" in proc.stderr
    assert "ControlNet not found: control_v11p_sd15_canny.safetensors; no models folder is set" in proc.stderr
