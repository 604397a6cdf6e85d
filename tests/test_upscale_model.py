"""Load upscale model and Upscale with model, on tiny networks built from spandrel's own
architectures (random weights, saved to tmp_path): detection, tiled = untiled, refusals, caching."""

from __future__ import annotations

import pickle
import sys

import pytest
import torch
from safetensors.torch import save_file

import nodes
from graphs import Executor, Graph, NodeType, Socket
from graphs.registry import base_registry
from nodes.spandrel_import import import_spandrel
from nodes.upscale_model import UPSCALE_MODELS, load_descriptor
from nodes.upscale_tiles import axis_weights, tile_starts

spandrel = import_spandrel()
from spandrel.architectures.Compact import Compact  # noqa: E402
from spandrel.architectures.ESRGAN import ESRGAN  # noqa: E402
from spandrel.architectures.SwinIR import SwinIR  # noqa: E402


def _tiny(kind: str):
    torch.manual_seed(0)
    if kind == "compact":  # Real-ESRGAN compact: 4 convs, a receptive field of 4 input px
        return Compact(num_feat=8, num_conv=2, upscale=4)
    if kind == "esrgan":
        return ESRGAN(num_filters=8, num_blocks=1, scale=2)
    return SwinIR(img_size=16, embed_dim=12, depths=[1], num_heads=[2], window_size=4, upscale=2,
                  upsampler="pixelshuffle")


def _save(tmp_path, kind: str, name: str = "") -> str:
    path = tmp_path / (name or f"{kind}.safetensors")
    save_file({k: v.contiguous() for k, v in _tiny(kind).state_dict().items()}, str(path))
    return str(path)


def run_upscale(model_path: str, image, settings=None, **params):
    """Load upscale model → Upscale with model, the image fed by a source node."""
    registry = nodes.register(base_registry())
    registry.nodes.register(NodeType("test.source", "Source", "test", lambda ctx: {"image": image},
                                     outputs=(Socket("image", "IMAGE"),)))
    g = Graph(registry)
    source = g.add_node(g.create_node("test.source"))
    loader = g.add_node(g.create_node("image.load_upscale_model", params={"model": model_path, "device": "cpu"}))
    node = g.add_node(g.create_node("image.upscale_with_model", params=params))
    g.connect(source.id, "image", node.id, "image")
    g.connect(loader.id, "upscale_model", node.id, "upscale_model")
    result = Executor(settings=settings).run(g, targets=[node.id])
    return result, loader.id, node.id


def _direct(kind: str, image):
    descriptor = spandrel.ModelLoader().load_from_state_dict(_tiny(kind).state_dict())
    return torch.cat([descriptor(picture[None]) for picture in image])


@pytest.mark.parametrize("kind, arch, scale", [("compact", "RealESRGAN Compact", 4), ("esrgan", "ESRGAN", 2),
                                               ("swinir", "SwinIR", 2)])
def test_the_architecture_and_scale_are_the_ones_built(tmp_path, kind, arch, scale):
    result, loader, node = run_upscale(_save(tmp_path, kind), torch.rand(1, 3, 20, 24))
    assert result.error is None, result.error
    model = result.outputs[loader]["upscale_model"]
    assert (model.architecture, model.scale, model.device, model.dtype) == (arch, scale, "cpu", torch.float32)
    assert result.outputs[node]["image"].shape == (1, 3, 20 * scale, 24 * scale)


def test_tiled_equals_untiled(tmp_path):
    image = torch.rand(2, 3, 70, 90)  # tiles of 32 px overlapping by 16: 5 x 4 per image
    result, _, node = run_upscale(_save(tmp_path, "compact"), image, tile=32, overlap=16)
    out, direct = result.outputs[node]["image"], _direct("compact", image)
    assert out.shape == (2, 3, 280, 360) and out.dtype == torch.float32
    # the compact net sees 4 px around a pixel, within the overlap's zero-weight quarter: exact
    assert torch.allclose(out, direct, atol=1e-5)
    result, _, node = run_upscale(_save(tmp_path, "compact"), image, tile=32, overlap=0)
    assert (result.outputs[node]["image"] - direct).abs().max() > 0.02  # without overlap, seams
    # ESRGAN, and SwinIR (window attention: tiles start on multiples of 16 px, aligned with its windows)
    for kind, tile in [("esrgan", 40), ("swinir", 48)]:
        result, _, node = run_upscale(_save(tmp_path, kind), image, tile=tile, overlap=32)
        assert torch.allclose(result.outputs[node]["image"], _direct(kind, image), atol=1e-4), kind
    # automatic: the whole of this small image in one tile on the CPU
    result, _, node = run_upscale(_save(tmp_path, "esrgan"), image)
    assert torch.equal(result.outputs[node]["image"], _direct("esrgan", image))


def test_tile_weights_sum_to_one():
    for length, tile, overlap, scale in [(100, 32, 8, 2), (97, 40, 13, 3), (64, 64, 32, 4), (50, 16, 0, 1),
                                         (513, 512, 32, 2), (1000, 200, 30, 1)]:
        starts, actual = tile_starts(length, tile, overlap)
        assert starts[0] == 0 and starts[-1] + tile >= length and (actual >= overlap or starts == [0])
        assert all(s % 16 == 0 for s in starts) or tile - overlap < 32
        total = torch.zeros(length * scale)
        for start, weight in zip(starts, axis_weights(length, tile, actual, scale, starts)):
            total[start * scale:start * scale + weight.numel()] += weight
        assert torch.allclose(total, torch.ones_like(total)), (length, tile, overlap)


def test_progress_status_and_cancel(tmp_path):
    from graphs.events import NodeStatus, Progress

    registry = nodes.register(base_registry())
    registry.nodes.register(NodeType("test.source", "Source", "test", lambda ctx: {"image": torch.rand(1, 3, 40, 40)},
                                     outputs=(Socket("image", "IMAGE"),)))
    g = Graph(registry)
    source = g.add_node(g.create_node("test.source"))
    loader = g.add_node(g.create_node("image.load_upscale_model", params={"model": _save(tmp_path, "compact")}))
    node = g.add_node(g.create_node("image.upscale_with_model", params={"tile": 16, "overlap": 4}))
    g.connect(source.id, "image", node.id, "image")
    g.connect(loader.id, "upscale_model", node.id, "upscale_model")
    executor, seen = Executor(), []
    executor.events.subscribe(seen.append)
    executor.run(g, targets=[node.id])
    steps = [(e.step, e.total) for e in seen if isinstance(e, Progress) and e.node_id == node.id]
    assert steps[-1] == (9, 9)
    assert "RealESRGAN Compact x4, 9 tiles of 16px" in [e.message for e in seen if isinstance(e, NodeStatus)]

    def cancel_at_third(event):
        if isinstance(event, Progress) and event.node_id == node.id and event.step == 3:
            executor.cancel()
    executor.events.subscribe(cancel_at_third)
    g.nodes[node.id].params["tile"] = 20
    seen.clear()
    result = executor.run(g, targets=[node.id])
    assert result.status == "cancelled"
    assert [e.step for e in seen if isinstance(e, Progress) and e.node_id == node.id][-1] == 3  # of 9


def test_out_of_memory_halves_the_tile():
    from types import SimpleNamespace

    from nodes.upscale_tiles import upscale

    descriptor = spandrel.ModelLoader().load_from_state_dict(_tiny("compact").state_dict())
    sides = []

    def run(piece):
        sides.append(max(piece.shape[-2:]))
        if max(piece.shape[-2:]) > 60:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return descriptor(piece)
    model = SimpleNamespace(descriptor=run, scale=4, device="cpu", dtype=torch.float32, architecture="Compact")
    warnings = []
    ctx = SimpleNamespace(status=lambda message: None, progress=lambda done, total: None,
                          check_cancel=lambda: None, warn=warnings.append)
    image = torch.rand(1, 3, 100, 100)
    out = upscale(ctx, model, image, 128, 16)
    assert warnings == ["out of memory with 100px tiles; retrying with 50px"] and sides[:2] == [100, 50]
    assert torch.allclose(out, descriptor(image), atol=1e-5)
    with pytest.raises(torch.OutOfMemoryError):  # past the smallest tile it is the executor's to report
        upscale(ctx, SimpleNamespace(**{**vars(model), "descriptor": lambda piece: run(piece.repeat(1, 1, 2, 2))}),
                image, 64, 16)
    assert warnings[1:] == ["out of memory with 64px tiles; retrying with 32px"]


def test_an_unknown_architecture_is_refused(tmp_path):
    path = tmp_path / "mystery.safetensors"
    save_file({"encoder.weight": torch.rand(4, 4), "decoder.bias": torch.rand(4)}, str(path))
    result, _, _ = run_upscale(str(path), torch.rand(1, 3, 8, 8))
    assert result.status == "failed" and result.error.title == "Load upscale model"
    assert "mystery.safetensors: spandrel does not recognise this architecture" in result.error.message


def test_an_inpainter_is_refused():
    from spandrel.architectures.LaMa import LaMa

    with pytest.raises(nodes.model_sources.ModelLoadError, match="LaMa is an inpainting model"):
        load_descriptor(LaMa(in_nc=4, out_nc=3).state_dict(), "lama.pth")
    assert "torchvision" not in sys.modules  # the stand-in spandrel imported with is gone again


class Payload:
    def __reduce__(self):
        return (print, ("unpickled!",))


def test_pth_only_when_it_is_plain_weights(tmp_path):
    plain = tmp_path / "plain.pth"
    torch.save({"params_ema": _tiny("compact").state_dict()}, plain)  # BasicSR's layout
    result, loader, _ = run_upscale(str(plain), torch.rand(1, 3, 8, 8))
    assert result.error is None and result.outputs[loader]["upscale_model"].architecture == "RealESRGAN Compact"
    unsafe = tmp_path / "unsafe.pth"
    with open(unsafe, "wb") as handle:
        torch.save({"weights": _tiny("compact").state_dict(), "extra": Payload()}, handle, pickle_module=pickle)
    result, _, _ = run_upscale(str(unsafe), torch.rand(1, 3, 8, 8))
    assert result.status == "failed" and "unsafe.pth: refused: it holds more than plain weights" in result.error.message
    assert "convert it to .safetensors" in result.error.message


def test_an_upscale_past_the_size_limit_is_refused(tmp_path):
    result, _, _ = run_upscale(_save(tmp_path, "compact"), torch.rand(1, 3, 8, 2049))
    assert result.status == "failed" and result.error.title == "Upscale with model"
    assert "2049x8 upscaled x4 would be 8196x32, past the 8192x8192 limit" in result.error.message
    result, _, _ = run_upscale(_save(tmp_path, "compact"), torch.rand(1, 3, 8, 8), tile=8)
    assert result.status == "failed" and "at least 16 px" in result.error.message


def test_loaded_once_across_runs_and_found_by_name(tmp_path):
    folder = tmp_path / "models" / "upscale_models"
    folder.mkdir(parents=True)
    _save(folder, "compact", "tiny_x4.safetensors")
    settings = {"models_dir": str(tmp_path / "models")}
    before = UPSCALE_MODELS.loads
    first, loader, _ = run_upscale("tiny_x4", torch.rand(1, 3, 8, 8), settings)  # a name, without its suffix
    second, _, _ = run_upscale("tiny_x4.safetensors", torch.rand(1, 3, 8, 8), settings)  # a new executor
    assert first.error is None and second.error is None
    assert UPSCALE_MODELS.loads == before + 1
    _save(folder, "esrgan", "tiny_x4.safetensors")  # the file changes: read again
    third, loader, _ = run_upscale("tiny_x4", torch.rand(1, 3, 8, 8), settings)
    assert UPSCALE_MODELS.loads == before + 2 and third.outputs[loader]["upscale_model"].architecture == "ESRGAN"
