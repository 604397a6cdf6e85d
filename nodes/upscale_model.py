"""Load upscale model and Upscale with model: ESRGAN, Real-ESRGAN, SwinIR, HAT and the other
super-resolution and restoration networks spandrel recognises from their weights alone.

Files are read without unpickling code: ``.safetensors``, or a ``.pth`` only where
``torch.load(weights_only=True)`` reads it. The image is upscaled in overlapping tiles, blended
with linear ramps, into one output buffer on the CPU, so an 8x upscale of a 1024² image needs
memory for that 8192² result (805 MB in float32) and one tile, not for the network run on the
whole image. Torch and spandrel are imported when a node runs.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graphs.registry import NodeType, Param, Socket

from .images import MAX_IMAGE_SIDE
from .model_folders import resolve_named
from .model_sources import ModelLoadError, checked_file, files_fingerprint, path_fingerprint

SUFFIXES = (".safetensors", ".pth", ".pt", ".ckpt")
DEVICES = ("auto", "cpu", "cuda")
_MAX_CACHED = 4


@dataclass(eq=False)
class UpscaleModel:
    """UPSCALE_MODEL socket value: a spandrel ``ImageModelDescriptor`` placed on its device."""

    descriptor: Any
    name: str  # the file's name, for messages
    key: tuple
    device: str
    dtype: Any

    @property
    def architecture(self) -> str:
        return self.descriptor.architecture.name

    @property
    def scale(self) -> int:
        return self.descriptor.scale

    def describe(self) -> str:
        count = sum(p.numel() for p in self.descriptor.model.parameters())
        return f"{self.architecture} x{self.scale} ({self.descriptor.purpose}, {count:,} parameters)"

    def cache_size_bytes(self) -> int:
        return 0  # held by UPSCALE_MODELS, not by the output cache


# ----- reading a file ---------------------------------------------------------------------
def resolve_upscale_file(source: str) -> Path:
    """An upscale model file; a folder, a FIFO, a device or another kind of file is refused."""
    if not source.strip():
        raise ModelLoadError("no upscale model set: choose one (a path, or a name in your upscale_models folder)")
    return checked_file(source, "upscale model", "model", SUFFIXES)


def upscale_model_path(value: str, settings: dict[str, Any]) -> Path:
    """A path, or a name in the upscale_models folders (nodes/model_folders.py)."""
    return resolve_upscale_file(resolve_named("upscale_models", value, settings))


def read_state_dict(path: Path) -> dict[str, Any]:
    """The file's tensors, unwrapped from the containers training scripts save them in."""
    import pickle

    import torch

    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        try:
            data = load_file(str(path))
        except Exception as exc:  # safetensors' own SafetensorError for bad or truncated files
            raise ModelLoadError(f"{path.name}: not a readable .safetensors file ({exc})") from None
    else:
        try:
            data = torch.load(str(path), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            raise ModelLoadError(f"{path.name}: refused: it holds more than plain weights and would need unsafe "
                                 f"unpickling ({str(exc).splitlines()[0][:200]}); convert it to .safetensors") from None
        except (RuntimeError, EOFError, ValueError, OSError) as exc:
            raise ModelLoadError(f"{path.name}: not a readable weights file ({type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0][:200] if str(exc) else ''})") from None
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path.name}: holds a {type(data).__name__}, not a dictionary of weights")
    from .spandrel_import import import_spandrel

    data = import_spandrel().canonicalize_state_dict(data)  # params_ema, state_dict, module. prefixes
    tensors = {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise ModelLoadError(f"{path.name}: no weights in this file")
    return tensors


def load_descriptor(state: dict[str, Any], name: str):
    """spandrel's descriptor for ``state``; refused unless it is an RGB super-resolution or
    restoration network (an inpainter needs a mask, a face restorer aligned face crops)."""
    spandrel = _spandrel()
    try:
        descriptor = spandrel.ModelLoader().load_from_state_dict(state)
    except spandrel.UnsupportedModelError:
        sample = ", ".join(sorted(state)[:3])
        raise ModelLoadError(f"{name}: spandrel does not recognise this architecture ({len(state)} tensors: "
                             f"{sample}...); it reads ESRGAN, Real-ESRGAN, SwinIR, HAT, DAT, SPAN and other "
                             "super-resolution networks") from None
    except Exception as exc:  # recognised, but the weights do not fit what was detected
        raise ModelLoadError(f"{name}: its weights look like a known architecture but do not load "
                             f"({type(exc).__name__}: {str(exc)[:300]})") from None
    arch = descriptor.architecture.name
    if not isinstance(descriptor, spandrel.ImageModelDescriptor):
        raise ModelLoadError(f"{name}: {arch} is an inpainting model (it needs a mask), not an upscaler")
    if descriptor.purpose == "FaceSR":
        raise ModelLoadError(f"{name}: {arch} is a face restoration model (it works on aligned face crops), "
                             "not an upscaler for whole images")
    if descriptor.input_channels != 3 or descriptor.output_channels != 3:
        raise ModelLoadError(f"{name}: this {arch} model takes {descriptor.input_channels}-channel images and "
                             f"gives {descriptor.output_channels}-channel ones; only RGB models can be used")
    return descriptor


def _spandrel():
    from .spandrel_import import import_spandrel

    return import_spandrel()


def load_upscale_model(path: Path, device: str) -> UpscaleModel:
    import torch

    descriptor = load_descriptor(read_state_dict(path), path.name)
    # fp16 on CUDA where spandrel says the architecture keeps its accuracy in it; fp32 otherwise.
    dtype = torch.float16 if device.startswith("cuda") and descriptor.supports_half else torch.float32
    descriptor.to(torch.device(device), dtype=dtype).eval()
    descriptor.model.requires_grad_(False)
    return UpscaleModel(descriptor, path.name, ("upscale_model", str(path), device, str(dtype)), device, dtype)


class UpscaleModelCache:
    """Loaded upscale models by file and device, each valid while the file is unchanged."""

    def __init__(self) -> None:
        self._models: OrderedDict[tuple, tuple[str, UpscaleModel]] = OrderedDict()
        self._lock = threading.Lock()
        self.loads = 0  # files actually read (for tests)

    def get(self, path: Path, device: str) -> UpscaleModel:
        key = (str(path), device)
        with self._lock:
            fingerprint = path_fingerprint(path)
            cached = self._models.get(key)
            if cached is not None and cached[0] == fingerprint:
                self._models.move_to_end(key)
                return cached[1]
            self._models.pop(key, None)  # a changed file: its old weights must not be served
            model = load_upscale_model(path, device)
            self.loads += 1
            self._models[key] = (fingerprint, model)
            while len(self._models) > _MAX_CACHED:
                self._models.popitem(last=False)
            return model

    def clear(self) -> None:
        with self._lock:
            self._models.clear()


UPSCALE_MODELS = UpscaleModelCache()


def run_load_upscale_model(ctx, model: str, device: str) -> dict[str, Any]:
    from .model_cache import resolve_device

    loaded = UPSCALE_MODELS.get(upscale_model_path(model, ctx.settings), resolve_device(device))
    ctx.status(loaded.describe())
    return {"upscale_model": loaded}


# ----- running it in tiles ----------------------------------------------------------------
def run_upscale_with_model(ctx, upscale_model: UpscaleModel, image, tile: int, overlap: int) -> dict[str, Any]:
    from .upscale_tiles import upscale

    if 0 < tile < 16:
        raise ValueError(f"tile {tile}: set 0 (automatic) or a side of at least 16 px")
    scale = upscale_model.scale
    height, width = image.shape[-2:]
    if width * scale > MAX_IMAGE_SIDE or height * scale > MAX_IMAGE_SIDE:
        raise ValueError(f"{width}x{height} upscaled x{scale} would be {width * scale}x{height * scale}, past the "
                         f"{MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE} limit: scale the image down first")
    return {"image": upscale(ctx, upscale_model, image, tile, overlap)}


LOAD_UPSCALE_MODEL = NodeType(
    "image.load_upscale_model", "Load upscale model", "loaders", run_load_upscale_model,
    outputs=(Socket("upscale_model", "UPSCALE_MODEL"),),
    params=(
        Param("model", "path", "", linkable=False, file_kind="upscale_models",
              tooltip="an upscaler's .safetensors (or plain-weights .pth) file: ESRGAN, Real-ESRGAN, SwinIR, HAT... "
                      "(a path, or its name in the upscale_models folder of your models folder)"),
        Param("device", "choice", "auto", choices=DEVICES, linkable=False, role="device",
              tooltip="auto: CUDA when present, else CPU"),
    ),
    fingerprint=files_fingerprint("model", upscale_model_path),
    settings_in_key=("models_dir", "extra_model_paths"),
    aliases=("UpscaleModelLoader", "esrgan", "upscaler"),
    description="Loads a super-resolution network (any architecture spandrel recognises) for Upscale with model.",
)
UPSCALE_WITH_MODEL = NodeType(
    "image.upscale_with_model", "Upscale with model", "image", run_upscale_with_model,
    inputs=(Socket("upscale_model", "UPSCALE_MODEL"), Socket("image", "IMAGE")),
    outputs=(Socket("image", "IMAGE"),),
    params=(
        Param("tile", "int", 0, min=0, max=MAX_IMAGE_SIDE, step=64, special_value="automatic",
              tooltip="the side of the square pieces the image is upscaled in, in input pixels; automatic: from "
                      "the free GPU memory (on the CPU 512, or 2048 output pixels); halved when memory runs out"),
        Param("overlap", "int", 32, min=0, max=512, step=8,
              tooltip="input pixels neighbouring tiles share, blended so no seam shows"),
    ),
    aliases=("ImageUpscaleWithModel", "esrgan", "super resolution", "upscale model"),
    description="Upscales an image by the model's factor (x2, x4...), tile by tile; a result past "
                f"{MAX_IMAGE_SIDE} px a side is refused.",
)

NODE_TYPES = (LOAD_UPSCALE_MODEL, UPSCALE_WITH_MODEL)
