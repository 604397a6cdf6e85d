"""Loading Stable Diffusion checkpoints (diffusers folders of every family, single files
recognised from their header) into the socket values of nodes/values.py.

The speed paths are nodes/accelerators.py; the cache (nodes/model_cache.py) shares one copy per
(source, device, dtype...) and reloads when the files change; source checks live in
nodes/model_sources.py. Weights only ever come from
safetensors or, for ``.bin``/``.ckpt``, through ``torch.load(weights_only=True)`` — nothing is
unpickled.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import converted_copies
from .accelerators import accelerator, fuse_qkv
from .families.catalog import FAMILIES, Family, family_for_folder
from .families.detect import CheckpointError, detect, predicts_v, read_header
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
)
from .values import ClipModel, TextEncoder, UNetModel, VaeModel

DEVICES = ("auto", "cpu", "cuda")
OFFLOAD_MODES = ("none", "model", "sequential")


@dataclass(eq=False)
class LoadedModel:
    unet: UNetModel
    clip: ClipModel
    vae: VaeModel
    source: str
    family: Family = FAMILIES["sd1"]
    note: str = ""  # how the weights were read (converted, or from a converted copy), for the node's status


def import_libraries() -> None:
    """Import what a first run needs (torch, diffusers' pipeline, transformers' CLIP: seconds of
    imports) ahead of time: the editor does it on its run thread while the window opens."""
    import torch  # noqa: F401

    _quiet_libraries()  # first: importing the pipelines logs transformers' torchvision notices otherwise
    from diffusers import StableDiffusionPipeline  # noqa: F401


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


def _pipeline_class(family: Family):
    import diffusers

    return getattr(diffusers, family.pipeline)


def _pipeline_options(family: Family) -> dict[str, Any]:
    if family.pipeline.startswith("StableDiffusionXL"):
        return {"add_watermarker": False}  # not part of the image the model makes
    return {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}


def _load_folder(folder: Path, dtype) -> tuple[Any, Family]:
    index = read_json(folder / "model_index.json")
    if not isinstance(index, dict):
        raise ModelLoadError(f"{folder / 'model_index.json'}: expected a JSON object")
    unet_config = read_json(folder / "unet" / "config.json") if (folder / "unet" / "config.json").is_file() else {}
    family = family_for_folder(index, unet_config if isinstance(unet_config, dict) else {})
    parts = ["unet", "vae", "scheduler"] + [p for e in family.text_encoders for p in (e.subfolder, e.tokenizer)]
    for part in parts:
        if not index.get(part, [None])[0]:
            raise ModelLoadError(f"{folder}: not a Stable Diffusion model (a {family.title} UNet needs {part!r}; "
                                 f"model_index.json has {sorted(k for k in index if not k.startswith('_'))})")
    # diffusers reads .bin with torch.load(weights_only=True); safetensors preferred when present.
    use_safetensors = check_weights(folder)
    pipe = _pipeline_class(family).from_pretrained(
        str(folder), dtype=dtype, local_files_only=True, use_safetensors=use_safetensors,
        **_pipeline_options(family))
    return pipe, family


def bundled_tokenizer(pad_token: str):
    """CLIP's tokenizer from the vocabulary we ship (resources/configs/clip_tokenizer), padded the
    way the family's encoder was trained (SD 1.x: <|endoftext|>; OpenCLIP encoders: "!")."""
    from transformers import CLIPTokenizer

    from .paths import resources_dir

    folder = resources_dir() / "configs" / "clip_tokenizer"
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), pad_token=pad_token,
                         model_max_length=77)


def _load_single_file(file: Path, dtype, config: str) -> tuple[Any, Family]:
    if file.suffix.lower() in (".ckpt", ".pt", ".pth", ".bin"):
        _check_pickle_is_weights_only(file)
        if not config:
            raise ModelLoadError(f"{file.name}: set 'config' to a local diffusers folder of the same architecture "
                                 "(a .ckpt cannot be recognised without loading it; .safetensors can)")
    elif file.suffix.lower() == ".safetensors":
        _check_safetensors_header(file)
    else:
        raise ModelLoadError(f"{file}: unsupported model file (expected .safetensors)")
    components: dict[str, Any] = {}
    if config:  # an override for unusual models: a local diffusers folder of the same architecture
        config_path = Path(config).expanduser()
        if not config_path.is_dir():
            raise ModelLoadError(f"config folder not found: {config_path}")
        if not (config_path / "model_index.json").is_file():
            raise ModelLoadError(f"config folder {config_path} is not a diffusers model folder "
                                 "(no model_index.json)")
        index, unet_config = read_json(config_path / "model_index.json"), read_json(config_path / "unet" / "config.json")
        family = family_for_folder(index if isinstance(index, dict) else {},
                                   unet_config if isinstance(unet_config, dict) else {})
    else:  # recognised from the header; configs and tokenizers are ours, nothing is downloaded
        try:
            detected = detect(read_header(file), file.name)
        except CheckpointError as exc:
            raise ModelLoadError(f"{exc}. For an unusual model, set 'config' to a local diffusers folder of "
                                 "its architecture") from None
        family = FAMILIES[detected.family]
        config_path = family.configs
        for spec in family.text_encoders:
            components[spec.tokenizer] = bundled_tokenizer(spec.pad_token)
    channels = _unet_input_channels(file)
    if channels is not None and channels != (read_json(config_path / "unet" / "config.json") or {}).get("in_channels"):
        # an inpainting UNet (9 channels) read with its family's normal config: the file says how many
        from diffusers import UNet2DConditionModel

        components["unet"] = UNet2DConditionModel.from_single_file(
            str(file), config=str(config_path), subfolder="unet", in_channels=channels, torch_dtype=dtype,
            local_files_only=True)
    pipe = _pipeline_class(family).from_single_file(
        str(file), config=str(config_path), dtype=dtype, local_files_only=True, **components,
        **_pipeline_options(family))
    if not config and family.id == "sd2":  # 512 models predict epsilon, 768 ones v: the file says which
        prediction = "v_prediction" if predicts_v(file, detected) else "epsilon"
        pipe.scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config, prediction_type=prediction)
    return pipe, family


def _load_single_file_or_copy(file: Path, dtype, config: str) -> tuple[Any, Family, str]:
    """A single file stored in another dtype than ``dtype`` is loaded from its converted copy when
    one is on disk (nodes/converted_copies.py); otherwise converted now and a copy written after.
    The third value says which, for the node's status."""
    stored = _stored_dtype(file)
    if stored is None or stored == dtype:
        return (*_load_single_file(file, dtype, config), "")
    name = str(dtype).removeprefix("torch.")
    copy = converted_copies.find_copy(file, dtype, config)
    if copy is not None:
        try:
            pipe, family = _load_folder(copy, dtype)
            converted_copies.used_copy()
            return pipe, family, f"{name} from its converted copy"
        except Exception:  # noqa: BLE001 - a damaged copy: removed, and the file converted as if there were none
            converted_copies.discard(copy)
    pipe, family = _load_single_file(file, dtype, config)
    kept = converted_copies.schedule_copy(file, dtype, config, lambda: _load_single_file(file, stored, config)[0])
    return pipe, family, f"converted from {str(stored).removeprefix('torch.')} to {name}; {kept}"


def _stored_dtype(file: Path):
    """The dtype of a .safetensors file's UNet weights (the bulk of it); None if unknown."""
    import torch

    from .families.detect import UNET

    if file.suffix.lower() != ".safetensors":
        return None
    try:
        header = read_header(file)
    except CheckpointError:
        return None
    stored = header.get(UNET + "input_blocks.0.0.weight", header.get("conv_in.weight", (None, ())))[0]
    return {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}.get(stored)


def _unet_input_channels(file: Path) -> int | None:
    """The UNet's input channels from a safetensors header (4 normal, 9 inpainting); None if unknown."""
    from .families.detect import UNET

    if file.suffix.lower() != ".safetensors":
        return None
    try:
        shape = read_header(file).get(UNET + "input_blocks.0.0.weight", (None, ()))[1]
    except CheckpointError:
        return None
    return shape[1] if len(shape) == 4 else None


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


def load_models(path: Path, key: tuple, device: str, dtype, config: str, compile: str,
                offload: str) -> LoadedModel:
    """Read a model's weights and set up its chosen fast path (the model cache calls this)."""
    speed_path = accelerator(compile)
    speed_path.check(device, offload)  # refused before the weights are read
    _quiet_libraries()
    try:
        pipe, family, note = (*_load_folder(path, dtype), "") if path.is_dir() else _load_single_file_or_copy(
            path, dtype, config)
    except ModelLoadError:
        raise
    except Exception as exc:  # corrupt files, wrong architecture, missing configs
        raise ModelLoadError(f"cannot load {path}: {type(exc).__name__}: {exc}") from exc
    latent_rgb = (load_latent_rgb(path, pipe.vae.config.latent_channels) if path.is_dir()
                  else None)
    encoders = [(getattr(pipe, spec.tokenizer), getattr(pipe, spec.subfolder), spec) for spec in family.text_encoders]
    for module in (pipe.unet, pipe.vae, *(encoder for _, encoder, _ in encoders)):
        module.eval()
        module.requires_grad_(False)
    place_on_device(pipe, device, offload)
    upcast_vae_if_needed(pipe.vae, family)
    unet_aot = speed_path.prepare(pipe)
    vae = VaeModel(pipe.vae, key, device, dtype, family.latent.latent_rgb, family.latent.latent_rgb_bias)
    if latent_rgb is not None:
        vae.latent_rgb, vae.latent_rgb_bias = latent_rgb
    unet = UNetModel(pipe.unet, dict(pipe.scheduler.config), key, device, dtype, family, pipe.vae_scale_factor,
                     bool(getattr(pipe.config, "force_zeros_for_empty_prompt", False)))
    vae.default_size = unet.default_size
    clip = ClipModel(tuple(TextEncoder(t, e, spec) for t, e, spec in encoders), key, device, dtype, family)
    speed_path.attach(unet, clip, device, offload, unet_aot)
    return LoadedModel(unet, clip, vae, str(path), family, note)


def upcast_vae_if_needed(vae, family: Family) -> None:
    """The SDXL VAE overflows in fp16 (its config says ``force_upcast``): the SDXL pipelines decode
    in fp32, so such a VAE stays in fp32 for good rather than being converted at each decode.
    SD 1.x/2.x pipelines decode in the model's dtype, as here."""
    import torch

    if family.upcast_vae and vae.dtype == torch.float16 and getattr(vae.config, "force_upcast", False):
        vae.to(dtype=torch.float32)


MODEL_CACHE = ModelCache(load_models)
