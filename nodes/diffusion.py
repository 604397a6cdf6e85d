"""The Stable Diffusion node types: load model, text encode, latents, noise, scheduler,
UNet denoise, VAE decode/encode."""

from __future__ import annotations

import random
from typing import Any

from graphs.registry import SEED_MAX, NodeType, Param, Socket

from . import sampling
from .accelerators import COMPILE_LABELS, COMPILE_MODES
from .comfy_sigmas import MODEL_DEFAULT, SCHEDULES, is_comfy
from .embeddings import library_fingerprint
from .inpaint import inpainting_unet
from .model_folders import resolve_named
from .model_sources import files_fingerprint, resolve_source
from .models import (
    DEVICES,
    DTYPES,
    MODEL_CACHE,
    OFFLOAD_MODES,
)
from .prompts import WEIGHTINGS, encode_prompt
from .schedulers import SCHEDULER_NAMES, SPACINGS, comfy_schedule_problem, scheduler_spec
from .values import ClipModel, Conditioning, Latent, NoiseSource, UNetModel, VaeModel


# ----- Load model ----------------------------------------------------------------------
def run_load_model(ctx, source: str, device: str, dtype: str, config: str, compile: str,
                   offload: str, prediction: str = "auto") -> dict[str, Any]:
    import dataclasses

    loaded = MODEL_CACHE.get(resolve_named("checkpoints", source, ctx.settings), device, dtype,
                             ctx.resolve_path(config) if config else "", compile, offload)
    unet = loaded.unet
    if prediction != "auto":  # this node's view of the shared model; the cached one is untouched
        unet = dataclasses.replace(unet, scheduler_config={**unet.scheduler_config, "prediction_type": prediction})
    ctx.status(f"{loaded.family.title} model, {unet.scheduler_config.get('prediction_type', 'epsilon')} prediction"
               + (f"; {loaded.note}" if getattr(loaded, "note", "") else ""))
    return {"model": unet, "clip": loaded.clip, "vae": loaded.vae}


# What version 1 of Load model stored for `compile`: the editor's labels of the time. Frozen here,
# so renaming a label later cannot break these files.
V1_COMPILE_LABELS = {
    "off": "off", "CUDA graphs": "cuda_graphs", "compile": "compile",
    "compile + CUDA graphs": "compile_cuda_graphs",
    "regional compile + CUDA graphs": "regional_cuda_graphs",
    "AOT compile + CUDA graphs": "aot_cuda_graphs",
}


def upgrade_load_model(version: int, params: dict[str, Any]) -> dict[str, Any]:
    if version < 2 and isinstance(params.get("compile"), str):
        label = params["compile"].strip()
        params["compile"] = next((v for k, v in V1_COMPILE_LABELS.items() if k.lower() == label.lower()), label)
    return params


LOAD_MODEL = NodeType(
    "sd.load_model", "Load model", "loaders", run_load_model, version=2, upgrade=upgrade_load_model,
    outputs=(Socket("model", "MODEL"), Socket("clip", "CLIP"), Socket("vae", "VAE")),
    params=(
        Param("source", "path", "bundled", linkable=False, report="model", file_kind="checkpoints",
              tooltip="'bundled', a diffusers model folder, or a single .safetensors checkpoint (a path, or "
                      "its name in your models folder's checkpoints/)"),
        Param("device", "choice", "auto", choices=DEVICES, linkable=False, role="device",
              tooltip="auto: CUDA when present, else CPU"),
        Param("dtype", "choice", "auto", choices=DTYPES, linkable=False,
              tooltip="auto: fp16 on CUDA, fp32 on CPU"),
        Param("config", "path", "", linkable=False,
              tooltip="single files are recognised (SD 1.x, SD 2.x, SDXL base/refiner) and use the configs we ship; "
                      "set this only for an unusual model: a local diffusers folder of its architecture"),
        Param("compile", "choice", "cuda_graphs", choices=COMPILE_MODES, choice_labels=COMPILE_LABELS,
              linkable=False,
              tooltip="CUDA graphs (CUDA only): replay the UNet and text encoder from CUDA graphs "
                      "(fast, no wait). compile: torch.compile the UNet and VAE decoder (slow "
                      "first run, cached on disk). regional: compile only the UNet's transformer "
                      "blocks (shorter compile), replay the UNet from a CUDA graph. AOT: compile "
                      "the UNet and VAE decoder ahead of time into packages on disk (slow first "
                      "run per image size; later launches load them at once), replay the UNet "
                      "from a CUDA graph"),
        Param("offload", "choice", "none", choices=OFFLOAD_MODES, linkable=False,
              tooltip="keep weights in RAM and move each model to the GPU when it runs"),
        Param("prediction", "choice", "auto", choices=("auto", "epsilon", "v_prediction"), linkable=False,
              tooltip="what the UNet predicts; auto: as the model says (an SD 2.x file: read from the file). "
                      "Set it for a v-prediction fine-tune that does not say so"),
    ),
    fingerprint=files_fingerprint("source", lambda value, settings: resolve_source(
        resolve_named("checkpoints", value, settings))),
    settings_in_key=("models_dir", "extra_model_paths"),
    aliases=("CheckpointLoaderSimple", "Load Checkpoint", "checkpoint", "ckpt", "model"),
    description="Loads UNet, text encoder and VAE once; every node using them shares one copy.",
)


# ----- Text encode ---------------------------------------------------------------------
def run_text_encode(ctx, clip: ClipModel, text: str, clip_skip: int = 0, weighting: str = "none") -> dict[str, Any]:
    layers = min(e.encoder.config.num_hidden_layers for e in clip.encoders)
    if clip_skip >= layers - (1 if clip.encoders[-1].spec.penultimate else 0):
        raise ValueError(f"clip_skip {clip_skip}: this model's text encoder has only {layers} layers")
    conditioning = encode_prompt(clip, text, clip_skip, weighting, ctx.settings)
    chunks = conditioning.embeds.shape[1] // clip.tokenizer.model_max_length
    if chunks > 1:
        ctx.status(f"{chunks} chunks of {clip.tokenizer.model_max_length - 2} tokens")
    for problem in clip.fast_path_problems():
        ctx.warn(problem)
    return {"conditioning": conditioning}


TEXT_ENCODE = NodeType(
    "sd.text_encode", "Text encode", "conditioning", run_text_encode,
    inputs=(Socket("clip", "CLIP"),), outputs=(Socket("conditioning", "CONDITIONING"),),
    params=(Param("text", "text", "", tooltip="the prompt", report="prompt"),
            Param("clip_skip", "int", 0, min=0, max=12, linkable=False,
                  tooltip="use the text encoder's output this many layers before its last, as diffusers' "
                          "clip_skip (A1111's 'Clip skip 2' is 1 here; 0: as the model was trained)"),
            Param("weighting", "choice", "none", choices=WEIGHTINGS, linkable=False,
                  tooltip="(word:1.3), (word), [word], BREAK: none reads brackets as text, as diffusers "
                          "does; comfy and a1111 weight the tokens as ComfyUI and A1111 do")),
    fingerprint=lambda params, settings: library_fingerprint(settings),
    settings_in_key=("models_dir", "extra_model_paths"),
    aliases=("CLIPTextEncode", "CLIP Text Encode (Prompt)", "prompt", "clip", "encode", "text"),
    description="Encodes a prompt with the model's text encoder(s); embedding:name (or an embedding's "
                "file name) uses a textual-inversion embedding from the embeddings folders.",
)


# ----- SDXL size conditioning ------------------------------------------------------------
def run_sdxl_conditioning(ctx, conditioning: Conditioning, original_width: int, original_height: int,
                          crop_left: int, crop_top: int, target_width: int, target_height: int,
                          aesthetic_score: float) -> dict[str, Any]:
    import dataclasses

    def size(width: int, height: int) -> tuple[int, int] | None:
        return (height, width) if width and height else None  # 0: the image's own size

    return {"conditioning": dataclasses.replace(
        conditioning, original_size=size(original_width, original_height), crop_top_left=(crop_top, crop_left),
        target_size=size(target_width, target_height), aesthetic_score=aesthetic_score or None)}


def _pixels(name: str, tooltip: str) -> Param:
    return Param(name, "int", 0, min=0, max=16384, step=8, tooltip=tooltip)


SDXL_CONDITIONING = NodeType(
    "sd.sdxl_conditioning", "SDXL size conditioning", "conditioning", run_sdxl_conditioning,
    inputs=(Socket("conditioning", "CONDITIONING"),), outputs=(Socket("conditioning", "CONDITIONING"),),
    params=(
        _pixels("original_width", "the size SDXL is told the training image had (0: the image's own size)"),
        _pixels("original_height", "0: the image's own size"),
        _pixels("crop_left", "crop offset SDXL is told the training image had (0: uncropped)"),
        _pixels("crop_top", "0: uncropped"),
        _pixels("target_width", "base model only (0: the image's own size)"),
        _pixels("target_height", "base model only (0: the image's own size)"),
        Param("aesthetic_score", "float", 0.0, min=0.0, max=10.0, step=0.5,
              tooltip="refiner only; 0: the pipeline's default (6.0 for the positive, 2.5 for the negative)"),
    ),
    aliases=("CLIPTextEncodeSDXL", "CLIPTextEncodeSDXLRefiner", "aesthetic score"),
    description="SDXL's micro-conditioning (sizes, crop, the refiner's aesthetic score) on a conditioning; "
                "without it the pipelines' defaults apply.",
)


# ----- Empty latent --------------------------------------------------------------------
def run_empty_latent(ctx, width: int, height: int, batch: int, channels: int,
                     scale: int, vae: VaeModel | None = None) -> dict[str, Any]:
    import torch

    if vae is not None:  # the model knows its latent shape better than the widgets
        channels, scale = vae.vae.config.latent_channels, vae.scale_factor
    if not width or not height:  # 0: the size the model was trained at, as the pipelines default to
        default = vae.default_size if vae is not None else NO_MODEL_SIZE
        width, height = width or default, height or default
        ctx.status(f"{width}x{height}" + (" (the model's default size)" if vae is not None else
                                           " (connect the VAE for the model's default size)"))

    if width % scale or height % scale:
        raise ValueError(f"width and height must be multiples of {scale} (got {width}x{height})")
    samples = torch.zeros(batch, channels, height // scale, width // scale)
    return {"latent": Latent(samples, empty=True)}


NO_MODEL_SIZE = 512  # "model default" with no VAE connected: SD 1.x, the bundled model's family

EMPTY_LATENT = NodeType(
    "sd.empty_latent", "Empty latent", "latent", run_empty_latent,
    inputs=(Socket("vae", "VAE", optional=True),),
    outputs=(Socket("latent", "LATENT"),),
    params=(
        Param("width", "int", 0, min=0, max=8192, step=8, report="width", special_value="model default",
              tooltip="pixels; 'model default' is the size the connected VAE's model was trained at "
                      "(SDXL 1024, SD 1.x 512; 512 with no VAE connected)"),
        Param("height", "int", 0, min=0, max=8192, step=8, report="height", special_value="model default",
              tooltip="pixels; 'model default' as for width"),
        Param("batch", "int", 1, min=1, max=64),
        Param("channels", "int", 4, min=1, max=64, linkable=False, overridden_by="vae",
              tooltip="latent channels (4 for SD 1.x/2.x); taken from the VAE when connected"),
        Param("scale", "int", 8, min=1, max=64, linkable=False, overridden_by="vae",
              tooltip="VAE downscale factor (8 for SD); taken from the VAE when connected"),
    ),
    aliases=("EmptyLatentImage", "Empty Latent Image", "latent image", "txt2img", "size"),
    description="A blank latent: text-to-image starts here from pure noise.",
)


# ----- Noise ---------------------------------------------------------------------------
SEED_CONTROLS = ("fixed", "increment", "decrement", "randomize")


def seed_after_run(params: dict[str, Any], name: str = "seed") -> dict[str, Any]:
    control, seed = params.get("control", "fixed"), params[name]
    if control == "increment":
        return {name: (seed + 1) % (SEED_MAX + 1)}
    if control == "decrement":
        return {name: (seed - 1) % (SEED_MAX + 1)}
    if control == "randomize":  # over the whole seed range, as the seed param declares it
        return {name: random.randint(0, SEED_MAX)}
    return {}


def run_noise(ctx, seed: int, control: str, source: str, method: str = "diffusers") -> dict[str, Any]:
    if method == "comfyui" and source != "cpu":
        ctx.warn("the comfyui method draws on the CPU, as ComfyUI does; source is not used")
    return {"noise": NoiseSource(seed, "cpu" if source == "cpu" else "device", method)}


NOISE_METHODS = ("diffusers", "comfyui")


NOISE = NodeType(
    "sd.noise", "Noise", "sampling", run_noise,
    outputs=(Socket("noise", "NOISE"),),
    params=(
        Param("seed", "seed", 0, min=0, max=SEED_MAX, report="seed"),
        Param("control", "choice", "fixed", choices=SEED_CONTROLS, linkable=False, drives="seed",
              tooltip="what happens to the seed after each run"),
        Param("source", "choice", "cpu", choices=("cpu", "device"), linkable=False,
              tooltip="cpu: the same seed gives the same image on any device"),
        Param("method", "choice", "diffusers", choices=NOISE_METHODS, linkable=False,
              tooltip="how the initial noise is drawn. diffusers: as diffusers' pipelines draw it from this "
                      "generator. comfyui: as ComfyUI's KSampler does (the seed on a CPU generator, one "
                      "float32 draw over the whole latent batch), for graphs imported from ComfyUI"),
    ),
    after_run=seed_after_run,
    aliases=("RandomNoise", "seed"),
    description="A seeded noise source (a torch.Generator, like diffusers' generator=).",
)


# ----- Scheduler -----------------------------------------------------------------------
def run_scheduler(ctx, name: str, steps: int, karras: bool, spacing: str,
                  schedule: str = MODEL_DEFAULT) -> dict[str, Any]:
    if is_comfy(schedule):
        problem = comfy_schedule_problem(name, schedule)
        if problem:
            raise ValueError(problem)
        if karras or spacing != "model default":
            ctx.warn(f"karras and spacing are not used: ComfyUI's '{schedule}' schedule sets the sigmas")
    return {"scheduler": scheduler_spec(name, steps, karras, spacing, schedule)}


SCHEDULER = NodeType(
    "sd.scheduler", "Scheduler", "sampling", run_scheduler,
    outputs=(Socket("scheduler", "SCHEDULER"),),
    params=(
        Param("name", "choice", "Euler", choices=SCHEDULER_NAMES, report="scheduler"),
        Param("steps", "int", 20, min=1, max=1000, report="steps"),
        Param("karras", "bool", False, tooltip="Karras sigma schedule (where supported)"),
        Param("spacing", "choice", "model default", choices=SPACINGS,
              tooltip="timestep spacing; 'model default' keeps the model's config"),
        Param("schedule", "choice", MODEL_DEFAULT, choices=SCHEDULES, linkable=False,
              tooltip="model default: the diffusers scheduler's own sigmas (with karras and spacing above). "
                      "Any other: ComfyUI's sigma schedule of that name, from the model's betas, and UNet "
                      "denoise then samples as ComfyUI's KSampler does (its denoise, start/end step and "
                      "timesteps), for graphs imported from ComfyUI. Euler runs it in diffusers (custom "
                      "sigmas); Euler a, Heun, DPM2, DPM2 a, LMS and DPM++ 2M step as ComfyUI's own samplers; "
                      "the others are refused"),
    ),
    aliases=("BasicScheduler", "KarrasScheduler", "sigmas", "steps", "sampler name"),
    description="Picks a diffusers scheduler, built from the model's own scheduler config.",
)


# ----- UNet denoise --------------------------------------------------------------------
def fit_problems(model: UNetModel, latent: Latent, cfg: float) -> list[str]:
    """Settings the model was not made for, said on the node rather than shown as a bad image:
    a size far from its trained one (a hires fix's 2x is fine), a CFG outside its usual range."""
    problems = []
    width, height = latent.samples.shape[-1] * model.vae_scale, latent.samples.shape[-2] * model.vae_scale
    trained = model.default_size
    if max(width, height) > 2 * trained or min(width, height) < trained / 2:
        problems.append(f"this model makes {trained}x{trained} images; {width}x{height} will not look right")
    low, high = model.family.cfg_range
    if cfg > 1 and not low <= cfg <= high:
        problems.append(f"cfg {cfg:g} is outside the {low:g}-{high:g} that {model.family.title} models are used at")
    return problems


def run_unet_denoise(ctx, model, positive, latent, noise, scheduler, negative=None,
                     cfg: float = 7.5, denoise: float = 1.0, start_step: int = 0,
                     end_step: int = -1, add_noise: bool = True, leftover_noise: bool = True,
                     preview_every: int = 1) -> dict[str, Any]:
    expected = model.unet.config.in_channels
    if latent.samples.shape[1] != expected and not inpainting_unet(model, latent.samples.shape[1]):
        raise ValueError(f"input 'latent' has {latent.samples.shape[1]} channels but the model "
                         f"expects {expected}; connect the VAE to Empty latent")
    if negative is None and cfg > 1:
        ctx.warn("no negative conditioning connected: classifier-free guidance is off")
    for problem in fit_problems(model, latent, cfg):
        ctx.warn(problem)
    preview = None
    matrix = _preview_matrix(model)
    if ctx.wants_previews:
        from PIL import Image

        def preview(rgb, step):
            image = Image.fromarray(rgb, "RGB")
            scale = _upscale(rgb)
            ctx.preview(image.resize((image.width * scale, image.height * scale), Image.NEAREST),
                        step)

    hooks = sampling.StepHooks(ctx.check_cancel, ctx.progress, preview, max(1, preview_every),
                               matrix, warn=ctx.warn)
    if model.graphed is not None and (positive.controls or (negative is not None and negative.controls)):
        ctx.warn("the UNet's CUDA graph / AOT package takes no ControlNet residuals: "
                 "the steps with a ControlNet ran it uncompiled")
    out, trace = sampling.denoise(model, positive, negative, latent, noise, scheduler, cfg,
                                  denoise, start_step, end_step, hooks,
                                  keep_trace=bool(ctx.settings.get("keep_trace", True)), add_noise=add_noise,
                                  leftover_noise=leftover_noise)
    trace.latent_rgb, trace.latent_rgb_bias = matrix
    for problem in model.fast_path_problems():
        ctx.warn(problem)
    return {"latent": out, "trace": trace}


def _preview_matrix(model: UNetModel) -> tuple:
    """The loaded VAE's latent→RGB map (a model folder may bring its own), else the family's."""
    vae = MODEL_CACHE.vae_for(model.key)
    if vae is None:
        return model.family.latent.latent_rgb, model.family.latent.latent_rgb_bias
    return vae.latent_rgb, vae.latent_rgb_bias


def _upscale(rgb) -> int:
    """Nearest-neighbour factor that makes a latent-sized preview about 256 px."""
    return max(1, 256 // max(rgb.shape[0], rgb.shape[1]))


UNET_DENOISE = NodeType(
    "sd.unet_denoise", "UNet denoise", "sampling", run_unet_denoise,
    inputs=(Socket("model", "MODEL"), Socket("positive", "CONDITIONING", report="positive"),
            Socket("negative", "CONDITIONING", optional=True, report="negative"),
            Socket("latent", "LATENT"),
            Socket("noise", "NOISE"), Socket("scheduler", "SCHEDULER")),
    outputs=(Socket("latent", "LATENT"), Socket("trace", "LATENT_TRACE")),
    params=(
        Param("cfg", "float", 7.5, min=0.0, max=100.0, step=0.5, slider=True, report="cfg",
              tooltip="classifier-free guidance scale (1 = off)"),
        Param("denoise", "float", 1.0, min=0.0, max=1.0, step=0.05, slider=True, report="denoise",
              tooltip="img2img strength: how much of the schedule to run on an input latent"),
        Param("start_step", "int", 0, min=0, max=1000,
              tooltip="first step (an empty latent, or one continued with add noise off)"),
        Param("end_step", "int", -1, min=-1, max=1000,
              tooltip="stop before this step, leaving noise (-1: run to the end)"),
        Param("add_noise", "bool", True, linkable=False,
              tooltip="off: the latent comes from a sampler stopped at start_step (its end_step), as a base "
                      "model hands over to the SDXL refiner; it is continued without new noise"),
        Param("leftover_noise", "bool", True, linkable=False,
              tooltip="under a ComfyUI schedule (ComfyUI's return_with_leftover_noise): on, a run with an "
                      "end_step stops there with its noise left; off, its last step goes to sigma 0"),
        Param("preview_every", "int", 1, min=1, max=1000, linkable=False,
              tooltip="live preview every N steps"),
    ),
    settings_in_key=("keep_trace",),  # a run without the trace must not be reused with one
    aliases=("KSampler", "KSamplerAdvanced", "SamplerCustom", "sampler", "sample", "denoise", "cfg"),
    description="The sampling loop with classifier-free guidance; outputs every step's latents.",
)


# ----- VAE -----------------------------------------------------------------------------
def decode_latent(vae: VaeModel, latent: Latent):
    """IMAGE ``[B,3,H,W]`` in 0..1 from latents, as the pipeline's decode + postprocess."""
    import torch

    with torch.inference_mode():
        samples = latent.samples.to(device=vae.device, dtype=vae.vae.dtype)
        decoded = vae.vae.decode(samples / vae.vae.config.scaling_factor, return_dict=False)[0]
        return (decoded / 2 + 0.5).clamp(0, 1).float().cpu()


def run_vae_decode(ctx, vae: VaeModel, latent: Latent) -> dict[str, Any]:
    image = decode_latent(vae, latent)
    for problem in vae.fast_path_problems():
        ctx.warn(problem)
    return {"image": image}


VAE_DECODE = NodeType(
    "sd.vae_decode", "VAE decode", "latent", run_vae_decode,
    inputs=(Socket("vae", "VAE"), Socket("latent", "LATENT")),
    outputs=(Socket("image", "IMAGE"),),
    aliases=("VAEDecode", "decode"),
    description="Latents to pixels.",
)


def run_vae_encode(ctx, vae: VaeModel, image) -> dict[str, Any]:
    import torch

    factor = vae.scale_factor
    height, width = image.shape[-2], image.shape[-1]
    if height % factor or width % factor:
        import torch.nn.functional as F

        height, width = height - height % factor, width - width % factor
        ctx.warn(f"image resized to {width}x{height} (a multiple of {factor})")
        image = F.interpolate(image, size=(height, width), mode="bilinear", antialias=True)
    with torch.inference_mode():
        pixels = (image * 2 - 1).to(device=vae.device, dtype=vae.vae.dtype)
        dist = vae.vae.encode(pixels).latent_dist
    scale = vae.vae.config.scaling_factor
    return {"latent": Latent(dist.mean * scale, mean=dist.mean, std=dist.std,
                             scaling_factor=scale)}


VAE_ENCODE = NodeType(
    "sd.vae_encode", "VAE encode", "latent", run_vae_encode,
    inputs=(Socket("vae", "VAE"), Socket("image", "IMAGE")),
    outputs=(Socket("latent", "LATENT"),),
    aliases=("VAEEncode", "img2img"),
    description="Pixels to latents (for img2img); the sample is drawn by the sampler's seed.",
)

NODE_TYPES = (LOAD_MODEL, TEXT_ENCODE, SDXL_CONDITIONING, EMPTY_LATENT, NOISE, SCHEDULER, UNET_DENOISE,
              VAE_DECODE, VAE_ENCODE)
