"""Load VAE: a VAE apart from the checkpoint, such as the fp16-fixed SDXL VAE or SD 1.x's
vae-ft-mse, from a diffusers VAE folder or a single ``.safetensors`` file (diffusers or original
layout). It is placed where the connected model is, and takes that model's family for what a
file cannot say: its configuration (the SD and SDXL VAEs differ only in their latent scaling) and
its preview colours."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from graphs.registry import NodeType, Param, Socket

from .model_folders import resolve_named
from .model_sources import ModelLoadError, checked_source, files_fingerprint
from .values import UNetModel, VaeModel


def resolve_vae_source(source: str) -> Path:
    """A diffusers VAE folder (with ``config.json``) or a ``.safetensors`` file; anything else is
    refused at once, naming the path."""
    path = checked_source(source, "VAE", "config.json", "point source at a VAE folder or a .safetensors file")
    if path.is_file() and path.suffix.lower() != ".safetensors":
        raise ModelLoadError(f"{path.name}: a VAE file must be .safetensors")
    return path


def _check_vae_file(path: Path) -> None:
    from .families.detect import UNET, CheckpointError, read_header

    try:
        names = set(read_header(path))
    except CheckpointError as exc:
        raise ModelLoadError(str(exc)) from None
    if any(name.startswith(UNET) for name in names):
        raise ModelLoadError(f"{path.name}: this looks like a whole checkpoint (it has a UNet); load it with "
                             "Load model, whose VAE output is its VAE")
    if not any("decoder." in name for name in names):
        raise ModelLoadError(f"{path.name}: no VAE decoder in this file ({len(names)} tensors)")


def _architecture(model: UNetModel) -> dict[str, Any]:
    """The VAE config a file is read into: the checkpoint's own VAE's (same architecture, its
    latent scaling), else the family's bundled one."""
    from diffusers import AutoencoderKL

    from .models import MODEL_CACHE

    own = MODEL_CACHE.vae_for(model.key)
    if own is not None:
        return dict(own.vae.config)
    return dict(AutoencoderKL.load_config(model.family.configs / "vae"))


def _read_vae_file(path: Path, config: dict[str, Any]):
    """An AutoencoderKL from one safetensors file, in diffusers' layout or the original one
    (converted by diffusers' own converter), strictly: every weight present and of its shape."""
    from diffusers import AutoencoderKL
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint
    from safetensors.torch import load_file

    _check_vae_file(path)
    state = load_file(str(path))
    if not any(key.startswith("decoder.up_blocks.") for key in state):  # the original layout
        state = convert_ldm_vae_checkpoint(state, config)
    vae = AutoencoderKL.from_config(config)
    try:
        vae.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[1:2] or [str(exc)]
        raise ModelLoadError(f"{path.name}: this VAE does not fit the model's ({first[0].strip()})") from None
    return vae


def _check_latent_space(folder: Path, expected: dict[str, Any], model: UNetModel) -> None:
    """A VAE folder's config says which latent space it encodes to: an SD 1.x VAE (scaling
    0.18215) on an SDXL model (0.13025) has the same shapes but gives washed-out or burnt images.
    A single file says nothing of it and is read with the model's own scaling."""
    from .model_sources import read_json

    config = read_json(folder / "config.json")
    if not isinstance(config, dict):
        raise ModelLoadError(f"{folder / 'config.json'}: expected a JSON object")
    for key in ("latent_channels", "scaling_factor"):
        have, want = config.get(key), expected.get(key)
        if isinstance(have, (int, float)) and isinstance(want, (int, float)) and abs(have - want) > 1e-6:
            raise ModelLoadError(f"{folder.name}: this VAE's {key} is {have:g}, the {model.family.title} model's "
                                 f"is {want:g}: it was made for another model family")


def load_vae(path: Path, model: UNetModel):
    """The AutoencoderKL at ``path`` on the model's device and in its dtype."""
    from diffusers import AutoencoderKL

    from .models import upcast_vae_if_needed

    try:
        if path.is_dir():
            _check_latent_space(path, _architecture(model), model)
            vae = AutoencoderKL.from_pretrained(str(path), torch_dtype=model.dtype, local_files_only=True)
        else:
            vae = _read_vae_file(path, _architecture(model)).to(dtype=model.dtype)
    except ModelLoadError:
        raise
    except Exception as exc:  # a truncated file, keys of another architecture
        raise ModelLoadError(f"cannot load the VAE {path}: {type(exc).__name__}: {exc}") from exc
    vae.eval()
    vae.requires_grad_(False)
    vae.to(model.device)
    upcast_vae_if_needed(vae, model.family)
    return vae


def run_load_vae(ctx, model: UNetModel, source: str) -> dict[str, Any]:
    path = resolve_vae_source(resolve_named("vae", source, ctx.settings))
    vae = load_vae(path, model)
    latent = model.family.latent
    return {"vae": VaeModel(vae, ("vae", str(path), model.device, str(model.dtype)), model.device, model.dtype,
                            latent.latent_rgb, latent.latent_rgb_bias, model.default_size)}


LOAD_VAE = NodeType(
    "sd.load_vae", "Load VAE", "loaders", run_load_vae,
    inputs=(Socket("model", "MODEL"),),
    outputs=(Socket("vae", "VAE"),),
    params=(Param("source", "path", "", linkable=False, report="vae", file_kind="vae",
                  tooltip="a diffusers VAE folder or a .safetensors VAE (e.g. the fp16-fixed SDXL VAE); it is "
                          "placed where the connected model is and takes that model's family"),),
    fingerprint=files_fingerprint("source", lambda value, settings: resolve_vae_source(
        resolve_named("vae", value, settings))),
    settings_in_key=("models_dir", "extra_model_paths"),
    aliases=("VAELoader",),
    description="Loads a VAE apart from the checkpoint; use its output in VAE decode/encode and Empty latent.",
)

NODE_TYPES = (LOAD_VAE,)
