"""LoRA files read the way diffusers reads them, into layers our weight patches merge.

A file goes through diffusers' own loader: ``lora_state_dict`` (which converts kohya/A1111 keys,
``alpha``s and LyCORIS LoCon into the peft layout; kohya's DoRA ``dora_scale``s, which it drops,
are placed on their layers here) and ``load_lora_into_unet`` /
``load_lora_into_text_encoder`` (which work out each layer's rank and scaling). That loader
injects peft layers into a model, so it is given a *hollow* copy of the live model — its
structure, with weightless (zero-stride) tensors — and what it builds there is kept: per layer
the peft LoRA module, whose ``get_delta_weight`` gives the weight change. The live model is never
given adapter layers; nodes/weight_patches.py merges the changes into its weights while it runs.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from graphs.executor import resolve_path
from graphs.registry import NodeType, Param, Socket

from .families.catalog import Family
from .model_folders import find
from .model_sources import ModelLoadError, checked_file, files_fingerprint, path_fingerprint
from .values import ClipModel, UNetModel
from .weight_patches import Patch, base_module

ADAPTER = "latentgraph"
LORA_SUFFIXES = (".safetensors", ".pt", ".ckpt", ".bin")
_MAX_CACHED = 8


class LoraLayers:
    """One LoRA file's layers for one model: module path -> peft LoRA layer (no base weights)."""

    def __init__(self, identity: str, layers: dict[str, Any], weight_scales: dict[str, Any] | None = None) -> None:
        self.identity = identity  # names the file's contents and the model it was read for
        self._layers = layers
        # kohya/LyCORIS DoRA: per layer, the magnitude its merged weight is scaled to (``dora_scale``)
        self.weight_scales = weight_scales or {}

    def items(self) -> Iterator[tuple[str, Any]]:
        return iter(self._layers.items())

    def __len__(self) -> int:
        return len(self._layers)

    def to(self, device) -> LoraLayers:
        """Keep the small LoRA weights where the model is, so merging moves nothing between devices.
        Only the adapters move: the hollow base layer would become a full copy if it did."""
        for layer in self._layers.values():
            for part in ("lora_A", "lora_B", "lora_magnitude_vector"):
                modules = getattr(layer, part, None)
                if modules is not None and ADAPTER in modules:
                    modules[ADAPTER].to(device)
        self.weight_scales = {k: v.to(device) for k, v in self.weight_scales.items()}
        return self

    def merge(self, path: str, layer, weight, strength: float, into: list) -> None:
        """Merge the layer at ``path`` at ``strength`` into ``weight`` and the ``into`` views that
        hold copies of it (fused projections), as peft merges it (DoRA included): diffusers'
        ``set_adapters`` weight scales the LoRA branch linearly, and so does strength."""
        import torch

        delta = layer.get_delta_weight(ADAPTER).to(dtype=torch.float32)
        if path in self.weight_scales:
            merged = _kohya_dora(weight.float(), delta, self.weight_scales[path].float(), strength).to(weight.dtype)
            for view in into:
                view.copy_(merged)
            return
        delta *= strength
        dora = getattr(layer, "lora_magnitude_vector", None)
        if dora is None or ADAPTER not in dora:
            if weight.dtype == torch.float32:  # in place: no copy of a large weight
                for view in into:
                    view.add_(delta)
                return
            merged = weight.to(torch.float32, copy=True).add_(delta)
        else:
            magnitude = dora[ADAPTER].weight.to(dtype=torch.float32).reshape(-1)
            # peft's DoRA: the merged weight renormalised per output channel to the learned magnitude
            merged = weight.to(torch.float32, copy=True).add_(delta)
            norm = merged.reshape(merged.shape[0], -1).norm(p=2, dim=1)
            merged *= (magnitude / norm).reshape(-1, *([1] * (merged.ndim - 1)))
        merged = merged.to(weight.dtype)  # rounded once, from fp32
        for view in into:
            view.copy_(merged)

    @staticmethod
    def bias_delta(layer, strength: float):
        """A LoRA with a bias on its up projection (peft's ``lora_bias``) shifts the layer's bias."""
        up = layer.lora_B[ADAPTER]
        if not layer.lora_bias.get(ADAPTER, False) or getattr(up, "bias", None) is None:
            return None
        return up.bias.float() * layer.scaling[ADAPTER] * strength


def _kohya_dora(weight, delta, scale, strength: float):
    """kohya/LyCORIS DoRA as ComfyUI applies it: the LoRA-merged weight rescaled to ``dora_scale``
    over its norm along the input axis (or the output axis, where the scale is per output), then
    blended with the original weight by ``strength``."""
    merged = weight + delta
    if scale.numel() == merged.shape[0] and scale.shape[0] == merged.shape[0]:  # one per output channel
        norm = merged.reshape(merged.shape[0], -1).norm(dim=1).reshape(-1, *([1] * (merged.ndim - 1)))
        scale = scale.reshape(norm.shape)
    else:  # one per input channel: ComfyUI's and LyCORIS's default
        norm = (merged.transpose(0, 1).reshape(merged.shape[1], -1).norm(dim=1, keepdim=True)
                .reshape(merged.shape[1], *([1] * (merged.ndim - 1))).transpose(0, 1))
        scale = scale.reshape(norm.shape)
    return weight + strength * (merged * (scale / norm) - weight)


def _place_weight_scales(tensors: dict[str, Any], components: dict[str, dict[str, Any]]) -> tuple[dict, int]:
    """Which layer each kohya ``dora_scale`` belongs to. diffusers' converter drops these keys; the
    layer is found by its down projection, which the converter carried over value for value."""
    scales = {k[:-len(".dora_scale")]: v for k, v in tensors.items() if k.endswith(".dora_scale")}
    if not scales:
        return {}, 0

    def signature(t) -> tuple:
        flat = t.detach().flatten().double()
        return flat.numel(), float(flat.sum()), float((flat * flat).sum())
    owners = {signature(layer.lora_A[ADAPTER].weight): (component, path)
              for component, layers in components.items() for path, layer in layers.items()}
    placed: dict[str, dict[str, Any]] = {}
    missing = 0
    for prefix, scale in scales.items():
        down = tensors.get(prefix + ".lora_down.weight")
        owner = owners.get(signature(down)) if down is not None else None
        if owner is None:
            missing += 1
            continue
        placed.setdefault(owner[0], {})[owner[1]] = scale.detach().float()
    return placed, missing


class LoraFile:
    """What one file changes: its layers for the UNet and for each text encoder by subfolder name."""

    def __init__(self, path: Path, unet: LoraLayers | None, encoders: dict[str, LoraLayers],
                 unplaced_scales: int = 0) -> None:
        self.path, self.unet, self.encoders = path, unet, encoders
        self.unplaced_scales = unplaced_scales  # kohya DoRA scales whose layer was not found

    def describe(self) -> str:
        parts = [f"{len(self.unet)} UNet layers" if self.unet else "no UNet layers"]
        parts += [f"{len(layers)} {name.replace('_', ' ')} layers" for name, layers in self.encoders.items()]
        return ", ".join(parts)


def resolve_lora_file(source: str) -> Path:
    """A LoRA file by path; a folder, a FIFO or a device is refused naming the path."""
    return checked_file(source, "LoRA", "file", LORA_SUFFIXES)


def _read_tensors(path: Path) -> dict[str, Any]:
    """The file's tensors: safetensors, or a pickle only through ``torch.load(weights_only=True)``."""
    import pickle

    import torch

    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:  # safetensors' own SafetensorError for bad or truncated files
            raise ModelLoadError(f"{path.name}: not a readable .safetensors file ({exc})") from None
    try:
        data = torch.load(str(path), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
        raise ModelLoadError(f"{path.name}: refused: it holds more than plain weights and would need "
                             f"unsafe unpickling ({type(exc).__name__}); convert it to .safetensors") from None
    data = data.get("state_dict", data) if isinstance(data, dict) else data
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise ModelLoadError(f"{path.name}: not a LoRA (expected a dictionary of tensors)")
    return data


def _refuse_unsupported(path: Path, names: list[str]) -> None:
    """Formats diffusers cannot apply to SD models, named for what they are."""
    kinds = {"hada_w1": "a LoHa (LyCORIS)", "lokr_w1": "a LoKr (LyCORIS)", "ia3_": "an IA3 (LyCORIS)",
             "oft_": "an OFT", "glora_": "a GLoRA (LyCORIS)"}
    for marker, kind in kinds.items():
        if any(marker in name for name in names):
            raise ModelLoadError(f"{path.name}: {kind} file; only LoRA, DoRA and LoCon files can be applied")
    if not any("lora" in name or name.endswith(".alpha") for name in names):
        sample = ", ".join(names[:3]) or "no tensors"
        raise ModelLoadError(f"{path.name}: no LoRA layers in this file (found {len(names)} tensors: {sample})")


def _family_guess(names: list[str]) -> str:
    if any(n.startswith(("lora_te1_", "lora_te2_", "text_encoder_2.")) or "input_blocks_" in n for n in names):
        return "SDXL"
    if any(n.startswith(("lora_te_", "text_encoder.")) or "down_blocks" in n for n in names):
        return "SD 1.x/2.x"
    return ""


def hollow_copy(module):
    """``module``'s structure with weightless tensors (zero strides over one element): what the
    loader needs to see the layers' shapes and dtypes, at no memory cost."""
    import torch
    from accelerate import init_empty_weights

    with init_empty_weights():
        if hasattr(type(module), "from_config"):  # diffusers models
            copy = type(module).from_config(module.config)
        else:  # transformers models
            copy = type(module)(module.config)
    for part in copy.modules():
        for name, param in list(part.named_parameters(recurse=False)):
            hollow = torch.zeros((), dtype=param.dtype).expand(param.shape)
            setattr(part, name, torch.nn.Parameter(hollow, requires_grad=False))
        for name, buffer in list(part.named_buffers(recurse=False)):
            part.register_buffer(name, torch.zeros((), dtype=buffer.dtype).expand(buffer.shape))
    return copy


def _peft_layers(model) -> dict[str, Any]:
    from peft.tuners.lora import LoraLayer

    return {name: module for name, module in model.named_modules()
            if isinstance(module, LoraLayer) and ADAPTER in module.lora_A}


def _loader(family: Family):
    from diffusers.loaders.lora_pipeline import StableDiffusionLoraLoaderMixin, StableDiffusionXLLoraLoaderMixin

    return StableDiffusionXLLoraLoaderMixin if family.size_conditioning else StableDiffusionLoraLoaderMixin


def read_lora(path: Path, unet, encoders: dict[str, Any], family: Family) -> LoraFile:
    """The file's layers for this UNet and these text encoders (subfolder name -> encoder)."""
    import logging

    tensors = _read_tensors(path)
    names = sorted(tensors)
    _refuse_unsupported(path, names)
    loader = _loader(family)
    identity = hashlib.sha256(f"{path}|{path_fingerprint(path)}|{family.id}".encode()).hexdigest()[:16]
    guess = _family_guess(names)
    elsewhere = f"; it looks made for {guess} models" if guess and guess not in family.title else ""
    quiet = logging.getLogger("diffusers")
    level, quiet.level = quiet.level, logging.CRITICAL  # its failures are ours to report, on the node
    try:
        state, alphas, metadata = loader.lora_state_dict(tensors, unet_config=unet.config,
                                                         return_lora_metadata=True)
        # transformers' adapter loader takes a DoRA magnitude as "...lora_magnitude_vector.weight";
        # diffusers hands text-encoder ones on without ".weight", and they would silently keep
        # their initial values (diffusers' own pipeline loses them so: tests/test_lora.py).
        state = {(k + ".weight" if k.endswith(".lora_magnitude_vector") and not k.startswith("unet.") else k): v
                 for k, v in state.items()}
        hollow_unet = hollow_copy(unet)
        loader.load_lora_into_unet(state, network_alphas=alphas, unet=hollow_unet, adapter_name=ADAPTER,
                                   metadata=metadata, low_cpu_mem_usage=False)
        found = {"unet": _peft_layers(hollow_unet)}
        for prefix, encoder in encoders.items():
            hollow = hollow_copy(encoder)
            loader.load_lora_into_text_encoder(state, network_alphas=alphas, text_encoder=hollow, prefix=prefix,
                                               adapter_name=ADAPTER, metadata=metadata, low_cpu_mem_usage=False)
            found[prefix] = _peft_layers(hollow)
        scales, unplaced = _place_weight_scales(tensors, found)
        unet_layers = found.pop("unet")
        encoder_layers = {prefix: LoraLayers(f"{identity}:{prefix}", layers, scales.get(prefix))
                          for prefix, layers in found.items() if layers}
    except ModelLoadError:
        raise
    except Exception as exc:  # diffusers/peft: keys or shapes that fit no layer of this model
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"{path.name}: does not fit this {family.title} model ({first[:300]}){elsewhere}") from None
    finally:
        quiet.level = level
    if not unet_layers and not encoder_layers:
        raise ModelLoadError(f"{path.name}: none of its layers are in this {family.title} model{elsewhere}")
    return LoraFile(path, LoraLayers(f"{identity}:unet", unet_layers, scales.get("unet")) if unet_layers else None,
                    encoder_layers, unplaced)


class LoraCache:
    """Recently read LoRA files, per file version and model: re-weighting one reads nothing."""

    def __init__(self) -> None:
        self._files: OrderedDict[tuple, LoraFile] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: Path, unet_value, clip_value) -> LoraFile:
        key = (str(path), path_fingerprint(path), unet_value.key, clip_value.key if clip_value else None)
        with self._lock:
            found = self._files.get(key)
            if found is not None:
                self._files.move_to_end(key)
                return found
        encoders = {e.spec.subfolder: base_module(e.encoder) for e in clip_value.encoders} if clip_value else {}
        lora = read_lora(path, base_module(unet_value.unet), encoders, unet_value.family)
        for layers in [lora.unet, *lora.encoders.values()]:
            if layers is not None:
                layers.to(unet_value.device)
        with self._lock:
            self._files[key] = lora
            while len(self._files) > _MAX_CACHED:
                self._files.popitem(last=False)
        return lora


LORA_CACHE = LoraCache()


# ----- Load LoRA -----------------------------------------------------------------------
def run_load_lora(ctx, model: UNetModel, clip: ClipModel, file: str, strength_model: float,
                  strength_clip: float) -> dict[str, Any]:
    import dataclasses

    lora = LORA_CACHE.get(lora_path(file, ctx.settings), model, clip)
    if lora.unplaced_scales:
        ctx.warn(f"{lora.unplaced_scales} DoRA scales in this file fit no layer of the model and are ignored")
    if strength_model and lora.unet is None:
        ctx.warn("this LoRA has no UNet layers: strength_model does nothing")
    if strength_clip and not lora.encoders:
        ctx.warn("this LoRA has no text-encoder layers: strength_clip does nothing")
    ctx.status(lora.describe())
    # Strength 0 hands on the very value it was given: the image is the model's without the LoRA.
    if strength_model and lora.unet is not None:
        model = dataclasses.replace(model, patches=model.patches + (Patch(lora.unet, strength_model),))
    if strength_clip and lora.encoders:
        clip = dataclasses.replace(clip, encoders=tuple(
            dataclasses.replace(e, patches=e.patches + (Patch(lora.encoders[e.spec.subfolder], strength_clip),))
            if e.spec.subfolder in lora.encoders else e for e in clip.encoders))
    return {"model": model, "clip": clip}


def lora_path(file: str, settings: dict[str, Any]) -> Path:
    """A path, or a name in the loras folders (nodes/model_folders.py)."""
    if not file.strip():
        raise ModelLoadError("no LoRA file set: choose one (a path, or a name in your loras folder)")
    return resolve_lora_file(str(find("loras", file, settings, resolve_path(file, settings))))


LOAD_LORA = NodeType(
    "sd.load_lora", "Load LoRA", "loaders", run_load_lora,
    inputs=(Socket("model", "MODEL"), Socket("clip", "CLIP")),
    outputs=(Socket("model", "MODEL"), Socket("clip", "CLIP")),
    params=(
        Param("file", "path", "", linkable=False, file_kind="loras",
              tooltip="a LoRA .safetensors file (kohya/A1111 or diffusers/peft; LoCon and DoRA included), "
                      "or its name in the loras folder of your models folder"),
        Param("strength_model", "float", 1.0, min=-10.0, max=10.0, step=0.05,
              tooltip="how strongly the LoRA changes the UNet; 0 leaves it as it was"),
        Param("strength_clip", "float", 1.0, min=-10.0, max=10.0, step=0.05,
              tooltip="how strongly the LoRA changes the text encoder(s); 0 leaves them as they were"),
    ),
    fingerprint=files_fingerprint("file", lora_path),
    settings_in_key=("models_dir", "extra_model_paths"),
    aliases=("LoraLoader", "LoraLoaderModelOnly", "lora"),
    description="Applies a LoRA to the model and text encoder it is given; chain several. The shared "
                "model is never changed for other nodes.",
)

NODE_TYPES = (LOAD_LORA,)
