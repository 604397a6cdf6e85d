"""The AOT compile mode: AOTInductor packages built once per input signature, kept on disk,
loaded by a later launch without compiling, and never holding a model's weights.

These compile real models on the CPU (about 35 s for the tiny SD model's UNet and decoder);
the CUDA test runs where a GPU is present (the lent device machine).
"""

import os
import time

import numpy as np
import pytest
import torch
from test_cuda_paths import needs_cuda, run_ok

from graphs import Executor
from graphs.events import NodeStatus
from nodes.accelerators import AOT
from nodes.aot import AotCompiled, aot_cache_dir
from nodes.models import MODEL_CACHE
from nodes.recipes import txt2img_graph


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    """A fresh user cache folder, so every package a test sees was built by that test."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    MODEL_CACHE.clear()
    yield aot_cache_dir()
    MODEL_CACHE.clear()


def _image(tiny_sd, mode: str, device: str = "cpu", size: int = 32, statuses: dict | None = None):
    """The image of a 3-step run; ``statuses`` collects the nodes' status messages by title."""
    graph, ids = txt2img_graph(str(tiny_sd), steps=3, size=size)
    graph.set_param(ids["load"], "device", device)
    graph.set_param(ids["load"], "dtype", "fp32")
    graph.set_param(ids["load"], "compile", mode)
    executor = Executor()
    if statuses is not None:
        executor.events.on(NodeStatus, lambda e: statuses.setdefault(
            graph.nodes[e.node_id].title, []).append(e.message))
    result = executor.run(graph)
    assert result.status == "finished", result.error and result.error.traceback
    assert not result.warnings, result.warnings  # no fallback to eager
    return np.asarray(result.outputs[ids["preview"]]["images"][0]).astype(int)


def _runners(tiny_sd, device: str = "cpu"):
    loaded = MODEL_CACHE.get(str(tiny_sd), device, "fp32", compile=AOT.id)
    return loaded.unet.aot, loaded.vae.vae.decoder.runner


def test_aot_mode_gives_the_eager_image_and_a_relaunch_loads_without_compiling(tiny_sd, cache_home):
    eager = _image(tiny_sd, "off")
    statuses: dict[str, list[str]] = {}
    first = _image(tiny_sd, AOT.id, statuses=statuses)
    assert np.abs(first - eager).max() <= 2
    # The wait is explained on the nodes that compile (the UI shows it in the status bar).
    loaded = ["SD 1.x model, epsilon prediction"]  # Load model says what it recognised
    assert statuses == {"load": loaded, "unet": ["compiling the UNet for 2x4x16x16, 2x24x16 (once per size, "
                                        "then kept on disk; this takes a while)"],
                        "decode": ["compiling the VAE decoder for 1x4x16x16 (once per size, "
                                       "then kept on disk; this takes a while)"]}
    unet, decoder = _runners(tiny_sd)
    assert (unet.built, unet.loaded, decoder.built, decoder.loaded) == (1, 0, 1, 0)
    packages = sorted(p.name for p in cache_home.glob("*.pt2"))
    assert [name.split("-")[0] for name in packages] == ["unet", "vae_decoder"]
    assert not list(cache_home.glob("*.partial*"))

    MODEL_CACHE.clear()  # what a second launch sees: new models, the packages on disk
    statuses.clear()
    again = _image(tiny_sd, AOT.id, statuses=statuses)
    assert np.array_equal(again, first)
    assert statuses == {"load": loaded, "unet": ["loading the compiled UNet (2x4x16x16, 2x24x16)"],
                        "decode": ["loading the compiled VAE decoder (1x4x16x16)"]}
    unet, decoder = _runners(tiny_sd)
    assert (unet.built, unet.loaded, decoder.built, decoder.loaded) == (0, 1, 0, 1)

    other_size = _image(tiny_sd, AOT.id, size=16)  # a new shape compiles its own packages
    assert np.abs(other_size - _image(tiny_sd, "off", size=16)).max() <= 2
    assert (unet.built, decoder.built) == (1, 1)
    assert len(list(cache_home.glob("*.pt2"))) == 4


def _conv_net(seed: int):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.SiLU(),
                               torch.nn.Conv2d(8, 3, 1)).eval().requires_grad_(False)


def test_packages_hold_no_weights_and_a_damaged_one_is_rebuilt(tmp_path):
    x = torch.randn(1, 3, 16, 16)
    first, second = _conv_net(0), _conv_net(1)
    built = AotCompiled(first, "net", tmp_path)
    assert torch.allclose(built(x), first(x), atol=1e-5)
    # Same structure, other weights: the same package, run with the second model's own weights.
    shared = AotCompiled(second, "net", tmp_path)
    assert torch.allclose(shared(x), second(x), atol=1e-5)
    assert (built.built, shared.built, shared.loaded) == (1, 0, 1)
    assert not torch.allclose(first(x), second(x), atol=1e-3)
    # Weights changed in place are seen without a rebuild (the package reads them in place).
    with torch.no_grad():
        second[0].weight.mul_(2)
    assert torch.allclose(shared(x), second(x), atol=1e-5)

    (package,) = tmp_path.glob("net-*.pt2")
    package.write_bytes(b"not a package")
    # A build killed half-way a day ago left its partial file; a fresh one (another process
    # compiling right now) is left alone.
    abandoned, in_progress = tmp_path / "net-old.x1.partial.pt2", tmp_path / "net-now.x2.partial.pt2"
    abandoned.write_bytes(b"half")
    in_progress.write_bytes(b"half")
    os.utime(abandoned, (time.time() - 86400, time.time() - 86400))
    rebuilt = AotCompiled(first, "net", tmp_path)
    assert torch.allclose(rebuilt(x), first(x), atol=1e-5)
    assert (rebuilt.built, rebuilt.loaded, rebuilt.disabled_reason) == (1, 0, None)
    assert not abandoned.exists() and in_progress.exists()
    # Another layout of the weights is other generated code: another package.
    first.to(memory_format=torch.channels_last)
    assert AotCompiled(first, "net", tmp_path).package_path((x,)) != package
    # So is a setting that changes the computation but not the module tree (diffusers keeps
    # such settings as plain attributes: flip_sin_to_cos, rescale_output_factor, ...).
    paths = {AotCompiled(_Scaled(factor), "scaled", tmp_path).package_path((x,)) for factor in (2, 3)}
    assert len(paths) == 2


_RELAUNCH = """
import sys
import torch
sys.path.insert(0, sys.argv[2])
from torch._inductor.cpu_vec_isa import valid_vec_isa_list
from test_aot import _conv_net
from nodes.aot import AotCompiled
net = _conv_net(0)
x = torch.randn(1, 3, 16, 16)
runner = AotCompiled(net, "net", sys.argv[1])
assert torch.allclose(runner(x), net(x), atol=1e-5)
print(runner.built, runner.loaded, valid_vec_isa_list.cache_info().currsize)
"""


def test_a_relaunch_loads_its_package_without_probing_the_cpu(tmp_path):
    """torch's own package loader works out the CPU's vector ISA by compiling and loading test
    libraries in child processes (9-11 s on torch 2.11): a relaunch's first image must not wait
    for that, since the package key already names the machine."""
    net, x = _conv_net(0), torch.randn(1, 3, 16, 16)
    AotCompiled(net, "net", tmp_path)(x)
    built, loaded, probed = _python(_RELAUNCH, tmp_path, os.path.dirname(__file__)).split()
    assert (built, loaded, probed) == ("0", "1", "0")


def _python(code: str, *args, **env) -> str:
    """The last line ``code`` prints, run in a fresh Python process (a relaunch of the app)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", code, *map(str, args)],
                          env={**os.environ, "HF_HUB_OFFLINE": "1", **env},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


class _Scaled(torch.nn.Module):
    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor
        self.conv = torch.nn.Conv2d(3, 3, 1)

    def forward(self, x):
        return self.conv(x) * self.factor


class _DataDependent(torch.nn.Module):
    def forward(self, x):
        return x * 2 if x.sum() > 0 else x - 1  # export cannot trace a branch on a value


def test_a_model_export_cannot_trace_runs_eagerly_and_says_why(tmp_path):
    runner = AotCompiled(_DataDependent(), "branchy", tmp_path)
    x = torch.ones(2, 2)
    assert torch.equal(runner(x), x * 2)
    assert torch.equal(runner(-x), -x - 1)
    assert runner.disabled_reason and runner.built == 0
    assert not list(tmp_path.glob("*.pt2"))


def test_aot_mode_refuses_cpu_offload(tiny_sd):
    from nodes.models import ModelLoadError

    with pytest.raises(ModelLoadError, match="offload"):
        MODEL_CACHE.get(str(tiny_sd), "cpu", "fp32", compile=AOT.id, offload="model")


@needs_cuda
def test_aot_mode_on_cuda_matches_eager_and_replays_the_unet_graph(tiny_sd, cache_home):
    eager = _image(tiny_sd, "off", "cuda")
    compiled = _image(tiny_sd, AOT.id, "cuda")
    assert np.abs(compiled - eager).max() <= 2
    loaded = MODEL_CACHE.get(str(tiny_sd), "cuda", "fp32", compile=AOT.id)
    graphed = loaded.unet.graphed
    assert graphed.captures >= 1 and graphed.disabled_reason is None
    assert loaded.unet.aot.built == 1 and loaded.unet.aot.disabled_reason is None


def test_when_aot_compile_fails_the_image_is_made_eagerly_and_the_nodes_say_why(tiny_sd, cache_home,
                                                                              monkeypatch):
    def no_compiler(self, path, tensors):
        raise RuntimeError("C++ compiler not found")

    monkeypatch.setattr(AotCompiled, "_build", no_compiler)
    graph, ids = txt2img_graph(str(tiny_sd), steps=3)
    graph.set_param(ids["load"], "dtype", "fp32")
    graph.set_param(ids["load"], "compile", AOT.id)
    result, _ = run_ok(graph)
    image = np.asarray(result.outputs[ids["preview"]]["images"][0]).astype(int)
    assert np.abs(image - _image(tiny_sd, "off")).max() <= 2
    warnings = {node: " ".join(texts) for node, texts in result.warnings.items()}
    assert set(warnings) == {ids["unet"], ids["decode"]}
    assert "AOT compile of the UNet failed" in warnings[ids["unet"]]
    assert "VAE decoder" in warnings[ids["decode"]] and "C++ compiler not found" in warnings[ids["decode"]]


_KEY_OF = """
import sys
from diffusers import UNet2DConditionModel
from nodes.aot import model_key, unet_forward_module
print(model_key(unet_forward_module(UNet2DConditionModel.from_pretrained(sys.argv[1]))))
"""


def test_a_model_has_the_same_package_key_in_every_process_and_folder(tiny_sd, tmp_path):
    """A relaunch must find the packages the last launch built: the key may not depend on where
    the model was loaded from or on the process's hash seed (set order)."""
    import shutil

    copy = tmp_path / "same_model_elsewhere"
    shutil.copytree(tiny_sd, copy)
    keys = {_python(_KEY_OF, folder / "unet", PYTHONHASHSEED=seed)
            for seed, folder in (("1", tiny_sd), ("2", copy))}
    assert len(keys) == 1


def test_a_lora_reaches_the_aot_packages_without_a_rebuild_and_leaves_them_as_they_were(tiny_sd, cache_home,
                                                                                      tmp_path):
    """Load LoRA merges into the weights the packages read (the attention projections fused, as the
    AOT mode fuses them), so nothing is rebuilt, and the bare model after it is bit for bit as before."""
    from test_lora import lora_graph, make_lora

    lora = make_lora(tiny_sd, tmp_path / "style.safetensors", 1)

    def image(mode, loras):
        graph, ids = lora_graph(tiny_sd, loras, 3)
        graph.set_param(ids["load"], "device", "cpu")
        graph.set_param(ids["load"], "dtype", "fp32")
        graph.set_param(ids["load"], "compile", mode)
        result = Executor().run(graph)
        assert result.status == "finished" and not result.warnings, result.error or result.warnings
        return np.asarray(result.outputs[ids["preview"]]["images"][0]).astype(int)

    bare = image(AOT.id, [])
    with_lora = image(AOT.id, [(lora, 0.8, 0.8)])
    assert np.abs(with_lora - image("off", [(lora, 0.8, 0.8)])).max() <= 2
    assert np.abs(with_lora - bare).max() > 8
    assert np.array_equal(image(AOT.id, []), bare)
    unet, decoder = _runners(tiny_sd)
    assert (unet.built, decoder.built) == (1, 1)


def test_sdxl_runs_from_aot_packages_with_its_added_conditioning(tiny_sdxl, cache_home):
    """SDXL's UNet takes the pooled text embedding and the size/crop time ids: the AOT package's
    call carries them, and its image is the eager one's."""
    images = {}
    for mode in ("off", AOT.id):
        graph, ids = txt2img_graph(str(tiny_sdxl), steps=3, prompt="a blue star", negative="blurry")
        graph.set_param(ids["load"], "device", "cpu")
        graph.set_param(ids["load"], "dtype", "fp32")
        graph.set_param(ids["load"], "compile", mode)
        result = Executor().run(graph)
        assert result.status == "finished" and not result.warnings, result.error or result.warnings
        images[mode] = np.asarray(result.outputs[ids["preview"]]["images"][0]).astype(int)
    assert np.abs(images["off"] - images[AOT.id]).max() <= 2
    unet, decoder = _runners(tiny_sdxl)
    assert (unet.built, decoder.built) == (1, 1)


def test_a_controlnet_step_runs_the_unet_eagerly_under_aot_and_the_node_says_so(tiny_sd, cache_home, tmp_path):
    """The AOT package was exported without ControlNet residuals: the steps that have them run the
    eager UNet, with the same image, and UNet denoise says why it did not use the package."""
    from PIL import Image

    from nodes.recipes import add_controlnet
    from nodes.tiny_models import make_tiny_controlnet

    net = make_tiny_controlnet(tmp_path / "net", tiny_sd)
    hint = tmp_path / "hint.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(hint)
    images, warnings = {}, {}
    for mode in ("off", AOT.id):
        graph, ids = txt2img_graph(str(tiny_sd), steps=3, prompt="a blue star", negative="blurry")
        graph.set_param(ids["load"], "device", "cpu")
        graph.set_param(ids["load"], "dtype", "fp32")
        graph.set_param(ids["load"], "compile", mode)
        add_controlnet(graph, ids, str(net), str(hint), end=0.5)  # the last step runs without it
        result = Executor().run(graph)
        assert result.status == "finished", result.error and result.error.traceback
        images[mode] = np.asarray(result.outputs[ids["preview"]]["images"][0]).astype(int)
        warnings[mode] = result.warnings.get(ids["unet"], [])
    assert np.abs(images["off"] - images[AOT.id]).max() <= 2
    assert warnings["off"] == []
    assert warnings[AOT.id] == ["the UNet's CUDA graph / AOT package takes no ControlNet residuals: "
                                "the steps with a ControlNet ran it uncompiled"]
    unet, _ = _runners(tiny_sd)
    assert unet.built == 1  # the step without a ControlNet used the package
