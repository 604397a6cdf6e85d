"""Upscale latent, Image scale, Scale to megapixels, and the bundled hires-fix workflow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import nodes  # noqa: F401
from graphs import Executor, Graph
from nodes.values import Latent

ROOT = Path(__file__).resolve().parent.parent


def run_node(type_id, inputs, **params):
    """One node run through the graph, fed ``inputs`` by a source node of a registry of its own."""
    from graphs import NodeType, Socket
    from graphs.registry import base_registry

    registry = nodes.register(base_registry())
    sockets = tuple(Socket(name, kind) for name, (kind, _) in inputs.items())
    registry.nodes.register(NodeType("test.source", "Source", "test", lambda ctx: {
        name: value for name, (_, value) in inputs.items()}, outputs=sockets))
    g = Graph(registry)
    source = g.add_node(g.create_node("test.source"))
    node = g.add_node(g.create_node(type_id, params=params))
    for name in inputs:
        g.connect(source.id, name, node.id, name)
    result = Executor().run(g, targets=[node.id])
    return result, node.id


def test_upscale_latent_by_a_factor_and_to_a_size():
    samples = torch.randn(1, 4, 8, 6)
    result, node = run_node("sd.upscale_latent", {"latent": ("LATENT", Latent(samples))},
                            method="bicubic", scale_by=2.0)
    out = result.outputs[node]["latent"]
    assert not out.empty and out.mean is None
    assert torch.equal(out.samples, F.interpolate(samples, size=(16, 12), mode="bicubic", align_corners=False))
    result, node = run_node("sd.upscale_latent", {"latent": ("LATENT", Latent(samples))},
                            method="nearest-exact", scale_by=0.0, width=96, height=0)  # aspect kept: 96x128
    assert result.outputs[node]["latent"].shape == (1, 4, 16, 12)
    wide = Latent(torch.randn(1, 4, 8, 80))  # 640 px wide: 16x is past the limit
    result, node = run_node("sd.upscale_latent", {"latent": ("LATENT", wide)}, scale_by=16.0)
    assert result.status == "failed" and "past the 8192x8192 limit" in result.error.message


def test_image_scale_and_megapixels():
    from PIL import Image

    image = torch.rand(1, 3, 20, 30)
    result, node = run_node("image.scale", {"image": ("IMAGE", image)}, method="area", scale_by=0.5)
    assert torch.allclose(result.outputs[node]["image"], F.interpolate(image, size=(10, 15), mode="area"))
    result, node = run_node("image.scale", {"image": ("IMAGE", image)}, method="lanczos", scale_by=0.0,
                            width=60, height=40)
    pil = Image.fromarray((image[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    expected = np.asarray(pil.resize((60, 40), Image.Resampling.LANCZOS), dtype=np.float32) / 255
    assert np.allclose(result.outputs[node]["image"][0].permute(1, 2, 0).numpy(), expected)
    big = torch.rand(1, 3, 200, 300)
    result, node = run_node("image.scale_to_megapixels", {"image": ("IMAGE", big)}, megapixels=0.015)
    assert result.outputs[node]["image"].shape[-2:] == (100, 150)  # 15,000 pixels, 3:2 kept


def test_the_bundled_hires_fix_runs_headless(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "nodeeditor.cli", "run", str(ROOT / "resources" / "workflows" /
                           "hires_fix.json"), "--output-dir", str(tmp_path), "--quiet"],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr
    from PIL import Image

    (path,) = tmp_path.glob("*.png")
    with Image.open(path) as image:
        assert image.size == (128, 128)  # the bundled model's 64 px, upscaled 2x
