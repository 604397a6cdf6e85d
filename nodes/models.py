"""Loading Stable Diffusion components, and the socket values that carry them.

The cache (nodes/model_cache.py) shares one copy per (source, device, dtype...) and reloads when
the files change; source checks live in nodes/model_sources.py. Weights only ever come from
safetensors or, for ``.bin``/``.ckpt``, through ``torch.load(weights_only=True)`` — nothing is
unpickled.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .cuda_graphs import GraphedCallable
from .model_cache import ModelCache, resolve_device, resolve_dtype  # noqa: F401 (re-exported)
from .model_sources import (  # noqa: F401 (re-exported: the nodes' and tests' names)
    DTYPES,
    ModelLoadError,
    check_weights,
    load_latent_rgb,
    model_settings,
    preferred_dtype,
    read_json,
    resolve_source,
    source_fingerprint,
)

DEVICES = ("auto", "cpu", "cuda")
# "CUDA graphs": the eager UNet and text encoder replayed from CUDA graphs (no compile wait).
# The compile modes also replay the text encoder from a CUDA graph.
# "regional compile + CUDA graphs": torch.compile only the repeated blocks (Dynamo traces each
# block shape once instead of the whole UNet: a shorter warm start), the whole UNet replayed
# from our own CUDA graph as in "CUDA graphs".
# "AOT compile + CUDA graphs": the UNet and VAE decoder compiled ahead of time by AOTInductor into
# packages kept on disk (nodes/aot.py): a later launch loads them without tracing; the UNet is
# replayed from our own CUDA graph as in "CUDA graphs".
REGIONAL = "regional compile + CUDA graphs"
AOT = "AOT compile + CUDA graphs"
COMPILE_MODES = ("off", "CUDA graphs", "compile", "compile + CUDA graphs", REGIONAL, AOT)
# The blocks that repeat, with few distinct shapes, in SD UNets (diffusers' `_repeated_blocks`);
# everything between them, and the VAE decoder, stays eager. ResnetBlock2D comes in many more
# shapes, each traced on its own, which made the warm start slower (docs/benchmarks.md).
REGIONAL_BLOCKS = ("BasicTransformerBlock",)
OFFLOAD_MODES = ("none", "model", "sequential")

# Published by the ComfyUI project for SD1.x latents (rows: latent channels; cols: R, G, B).
SD1_LATENT_RGB = ((0.3512, 0.2297, 0.3227), (0.3250, 0.4974, 0.2350),
                  (-0.2829, 0.1762, 0.2721), (-0.2120, -0.2616, -0.7177))


@dataclass(eq=False)
class UNetModel:
    """MODEL socket value: the UNet and the scheduler config it was trained with."""

    unet: Any
    scheduler_config: dict[str, Any]
    key: tuple
    device: str
    dtype: Any
    # The UNet's fast path, if enabled: replayed from CUDA graphs (and, in the AOT mode, run from
    # AOT-compiled packages; on the CPU only that).
    graphed: GraphedCallable | None = None
    aot: Any = None  # the AotCompiled UNet in the AOT mode (its builds, loads and failure)

    def predict(self, sample, timestep, embeds):
        """The UNet's output for one step (``return_dict=False``'s first item); ``timestep`` is a
        tensor on the sample's device, as the scheduler's timesteps are."""
        if self.graphed is not None:
            return self.graphed(sample, timestep, embeds)
        return self.unet(sample, timestep, encoder_hidden_states=embeds, return_dict=False)[0]

    def fast_path_problems(self) -> list[str]:
        """Why the chosen compile mode fell back to running the UNet eagerly, if it did."""
        return fallbacks("UNet", aot=self.aot, graphed=self.graphed)

    def cache_size_bytes(self) -> int:
        return 0  # owned by the model cache, not by the output cache


@dataclass(eq=False)
class ClipModel:
    """CLIP socket value: tokenizer + text encoder."""

    tokenizer: Any
    text_encoder: Any
    key: tuple
    device: str
    dtype: Any
    graphed: GraphedCallable | None = None  # the encoder replayed from CUDA graphs, if enabled

    def fast_path_problems(self) -> list[str]:
        """Why the text encoder's CUDA graph fell back to running it eagerly, if it did."""
        return fallbacks("text encoder", graphed=self.graphed)

    def encode(self, input_ids, attention_mask=None):
        """The encoder's last hidden state for token ids already on ``device``."""
        if self.graphed is not None and attention_mask is None:
            return self.graphed(input_ids)
        return self.text_encoder(input_ids, attention_mask=attention_mask)[0]

    def cache_size_bytes(self) -> int:
        return 0


@dataclass(eq=False)
class VaeModel:
    """VAE socket value, with the latent→RGB preview matrix for this model's latent space."""

    vae: Any
    key: tuple
    device: str
    dtype: Any
    latent_rgb: tuple[tuple[float, ...], ...] = SD1_LATENT_RGB
    latent_rgb_bias: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def fast_path_problems(self) -> list[str]:
        """Why the AOT-compiled decoder fell back to running eagerly, if it did."""
        return fallbacks("VAE decoder", aot=getattr(self.vae.decoder, "runner", None))

    @property
    def scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    def cache_size_bytes(self) -> int:
        return 0


def fallbacks(model: str, aot=None, graphed=None) -> list[str]:
    """The node warnings for a model whose AOT compile or CUDA graph capture failed (both keep
    the reason in ``disabled_reason`` and run the model eagerly)."""
    problems = []
    if aot is not None and aot.disabled_reason:
        problems.append(f"AOT compile of the {model} failed; it ran uncompiled "
                        f"({aot.disabled_reason})")
    if graphed is not None and graphed.disabled_reason:
        problems.append(f"CUDA graph capture of the {model} failed; it ran without "
                        f"({graphed.disabled_reason})")
    return problems


@dataclass(eq=False)
class LoadedModel:
    unet: UNetModel
    clip: ClipModel
    vae: VaeModel
    source: str


def import_libraries() -> None:
    """Import what a first run needs (torch, diffusers' pipeline, transformers' CLIP: seconds of
    imports) ahead of time: the editor does it on its run thread while the window opens."""
    import torch  # noqa: F401
    from diffusers import StableDiffusionPipeline  # noqa: F401

    _quiet_libraries()


def _quiet_libraries() -> None:
    """Progress bars and deprecation chatter from diffusers/transformers are noise in our UI."""
    import warnings

    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    diffusers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    warnings.filterwarnings("ignore", category=FutureWarning, module="diffusers")


def _load_folder(folder: Path, dtype) -> Any:
    from diffusers import StableDiffusionPipeline

    index = read_json(folder / "model_index.json")
    if not isinstance(index, dict):
        raise ModelLoadError(f"{folder / 'model_index.json'}: expected a JSON object")
    for part in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        if part not in index:
            raise ModelLoadError(f"{folder}: not a Stable Diffusion model (model_index.json has "
                                 f"no {part!r}; found {sorted(k for k in index if not k.startswith('_'))})")
    # diffusers reads .bin with torch.load(weights_only=True); safetensors preferred when present.
    use_safetensors = check_weights(folder)
    return StableDiffusionPipeline.from_pretrained(
        str(folder), dtype=dtype, safety_checker=None, feature_extractor=None,
        requires_safety_checker=False, local_files_only=True, use_safetensors=use_safetensors)


def _load_single_file(file: Path, dtype, config: str) -> Any:
    from diffusers import StableDiffusionPipeline

    if file.suffix.lower() in (".ckpt", ".pt", ".pth", ".bin"):
        _check_pickle_is_weights_only(file)
    elif file.suffix.lower() == ".safetensors":
        _check_safetensors_header(file)
    else:
        raise ModelLoadError(f"{file}: unsupported model file (expected .safetensors)")
    # Without ``config`` diffusers fetches the architecture's configs from the Hugging Face Hub
    # (it retries online even with local_files_only=True), so refuse before that.
    if not config:
        raise ModelLoadError(
            f"{file.name}: a single-file checkpoint needs 'config' set to a local diffusers "
            "folder of the same architecture (model_index.json, unet/vae/text_encoder configs, "
            "tokenizer, scheduler), e.g. a stable-diffusion-v1-5 folder; nothing is downloaded")
    config_path = Path(config).expanduser()
    if not config_path.is_dir():
        raise ModelLoadError(f"config folder not found: {config_path}")
    if not (config_path / "model_index.json").is_file():
        raise ModelLoadError(f"config folder {config_path} is not a diffusers model folder "
                             "(no model_index.json)")
    return StableDiffusionPipeline.from_single_file(
        str(file), config=str(config_path), dtype=dtype, safety_checker=None,
        requires_safety_checker=False, local_files_only=True)


def _check_safetensors_header(file: Path) -> None:
    from safetensors import safe_open

    try:
        with safe_open(str(file), framework="pt") as weights:
            weights.keys()
    except Exception as exc:  # safetensors raises its own SafetensorError for bad headers
        raise ModelLoadError(f"{file}: not a readable .safetensors file "
                             f"({type(exc).__name__}: {exc})") from None


def _check_pickle_is_weights_only(file: Path) -> None:
    import pickle

    import torch

    try:
        torch.load(str(file), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
        raise ModelLoadError(f"{file}: refused: the checkpoint holds more than plain weights "
                             f"and would need unsafe unpickling ({exc.__class__.__name__}). "
                             "Convert it to .safetensors.") from None


def place_on_device(pipe, device: str, offload: str) -> None:
    """Move the models to ``device`` once, or hand them to diffusers' own CPU offload."""
    import torch

    if offload != "none":
        if not device.startswith("cuda"):
            raise ModelLoadError(f"CPU offload needs a CUDA device (device is {device!r})")
        if offload == "model":
            pipe.enable_model_cpu_offload(device=device)
        else:
            pipe.enable_sequential_cpu_offload(device=device)
        return
    pipe.to(device)
    if device.startswith("cuda"):
        # Convolutions in NHWC run on tensor cores without layout shuffles; cuDNN picks the
        # fastest kernels once per shape; one QKV matmul instead of three per attention.
        pipe.unet.to(memory_format=torch.channels_last)
        pipe.vae.to(memory_format=torch.channels_last)
        torch.backends.cudnn.benchmark = True
        fuse_qkv(pipe)


def fuse_qkv(pipe) -> None:
    """Fuse the attention QKV projections once (changes rounding only, not the result)."""
    if getattr(pipe, "_latentgraph_qkv_fused", False):
        return
    try:
        pipe.fuse_qkv_projections()
    except Exception:  # older/odd attention processors: stay unfused
        return
    pipe._latentgraph_qkv_fused = True


def compile_cache_dir() -> Path:
    """Where torch.compile keeps its artefacts, so a second launch skips the compile."""
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "latentgraph" / "torch_compile"


def use_compile_cache_dir() -> None:
    """Keep inductor's own caches (kernels, graphs) beside ours, unless the user chose a place."""
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(compile_cache_dir()))


def compile_pipeline(pipe, reduce_overhead: bool = False, regional: bool = False) -> None:
    """torch.compile the UNet and the VAE decoder (fused QKV, full graphs, on-disk cache).

    ``regional``: compile each of the UNet's repeated blocks (``REGIONAL_BLOCKS``) instead,
    with static shapes; the VAE decoder stays eager."""
    import torch

    use_compile_cache_dir()
    import torch._inductor.config as inductor_config

    inductor_config.fx_graph_cache = True
    fuse_qkv(pipe)
    if regional:
        compile_blocks(pipe.unet)
        return
    mode = "reduce-overhead" if reduce_overhead else None
    pipe.unet = torch.compile(pipe.unet, mode=mode, fullgraph=True)
    pipe.vae.decoder = torch.compile(pipe.vae.decoder, mode=mode, fullgraph=True)


def compile_blocks(model, names: tuple[str, ...] = REGIONAL_BLOCKS) -> int:
    """Regional compilation: torch.compile every submodule whose class is in ``names`` (static
    shapes, full graphs); returns how many were compiled."""
    import torch._dynamo.config as dynamo_config

    # One compiled variant per block shape (SD1.5 transformer blocks: 4 per image size); past
    # the default limit of 8 (a third size) Dynamo would quietly run the blocks eagerly.
    dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, 64)
    count = 0
    for module in model.modules():
        if type(module).__name__ in names:
            module.compile(fullgraph=True, dynamic=False)
            count += 1
    return count


def graph_unet(unet) -> GraphedCallable:
    def forward(sample, timestep, embeds):
        return unet(sample, timestep, encoder_hidden_states=embeds, return_dict=False)[0]

    return GraphedCallable(forward, "UNet")


def graph_text_encoder(encoder) -> GraphedCallable:
    return GraphedCallable(lambda input_ids: encoder(input_ids)[0], "text encoder")


def load_models(path: Path, key: tuple, device: str, dtype, config: str, compile: str,
                offload: str) -> LoadedModel:
    """Read a model's weights and set up its chosen fast path (the model cache calls this)."""
    if compile == AOT and offload != "none":  # refused before the weights are read
        raise ModelLoadError("'AOT compile' reads the weights where they were loaded and "
                             "cannot follow CPU offload; set offload to 'none' or pick "
                             "another compile mode")
    _quiet_libraries()
    try:
        if path.is_dir():
            pipe = _load_folder(path, dtype)
        else:
            pipe = _load_single_file(path, dtype, config)
    except ModelLoadError:
        raise
    except Exception as exc:  # corrupt files, wrong architecture, missing configs
        raise ModelLoadError(f"cannot load {path}: {type(exc).__name__}: {exc}") from exc
    latent_rgb = (load_latent_rgb(path, pipe.vae.config.latent_channels) if path.is_dir()
                  else None)
    for module in (pipe.unet, pipe.vae, pipe.text_encoder):
        module.eval()
        module.requires_grad_(False)
    place_on_device(pipe, device, offload)
    unet_aot = None
    if compile == AOT:
        from .aot import AotCompiled, aot_decoder, unet_forward_module

        use_compile_cache_dir()
        fuse_qkv(pipe)
        unet_aot = AotCompiled(unet_forward_module(pipe.unet), "unet", title="UNet")
        pipe.vae.decoder = aot_decoder(pipe.vae.decoder)
    if compile in ("compile", "compile + CUDA graphs", REGIONAL):
        compile_pipeline(pipe, reduce_overhead=compile == "compile + CUDA graphs",
                         regional=compile == REGIONAL)
    vae = VaeModel(pipe.vae, key, device, dtype)
    if latent_rgb is not None:
        vae.latent_rgb, vae.latent_rgb_bias = latent_rgb
    unet = UNetModel(pipe.unet, dict(pipe.scheduler.config), key, device, dtype)
    clip = ClipModel(pipe.tokenizer, pipe.text_encoder, key, device, dtype)
    # Offloading moves weights between devices, which a captured graph cannot follow.
    if compile != "off" and device.startswith("cuda") and offload == "none":
        clip.graphed = graph_text_encoder(pipe.text_encoder)
        if compile in ("CUDA graphs", REGIONAL):
            unet.graphed = graph_unet(pipe.unet)
    if unet_aot is not None:
        # One package for every timestep dtype (schedulers give float or int timesteps; the
        # UNet embeds both the same way). GraphedCallable passes through on the CPU.
        unet.graphed = GraphedCallable(
            lambda sample, timestep, embeds: unet_aot(sample, timestep.float(), embeds), "UNet")
        unet.aot = unet_aot
    return LoadedModel(unet, clip, vae, str(path))


MODEL_CACHE = ModelCache(load_models)
