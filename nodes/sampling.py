"""The denoising loop, step for step what diffusers' Stable Diffusion pipelines do,
plus progress, live previews, a latent trace and a cancel check every step."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .combined_prompts import CombinedPrompts
from .control_steps import ControlSteps
from .families.catalog import SD1_LATENT_RGB
from .inpaint import inpainting_unet
from .prompts import pad_to_same_length
from .schedulers import build_scheduler
from .transfer import HostCopier
from .unet_inputs import added_conditioning, expand_batch
from .values import Conditioning, Latent, LatentTrace, NoiseSource, SchedulerSpec, UNetModel


@dataclass
class StepHooks:
    """Called by the loop; all optional."""

    check_cancel: Callable[[], None] = lambda: None
    progress: Callable[[int, int], None] = lambda step, total: None
    preview: Callable[[Any, int], None] | None = None  # (uint8 [h,w,3] host array, step)
    preview_every: int = 1
    preview_matrix: tuple = (SD1_LATENT_RGB, (0.0, 0.0, 0.0))  # (4x3 latent→RGB matrix, bias)
    warn: Callable[[str], None] = lambda message: None  # a note for the node (a resized hint)


def predict_x0(scheduler, sample, model_output, timestep):
    """x0 implied by a VP-space model output (for schedulers that don't report it)."""
    alphas = scheduler.alphas_cumprod.to(sample.device)
    # Index with a device tensor: int(timestep) would synchronise a CUDA stream.
    index = timestep.to(sample.device).long() if hasattr(timestep, "to") else int(timestep)
    alpha = alphas[index].to(sample.dtype)
    beta = 1 - alpha
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return (sample - beta.sqrt() * model_output) / alpha.sqrt()
    if kind == "v_prediction":
        return alpha.sqrt() * sample - beta.sqrt() * model_output
    return model_output  # "sample"


def denoise(model: UNetModel, positive: Conditioning, negative: Conditioning | None,
            latent: Latent, noise: NoiseSource, spec: SchedulerSpec, cfg: float,
            denoise_strength: float = 1.0, start_step: int = 0, end_step: int = -1,
            hooks: StepHooks | None = None, keep_trace: bool = True,
            add_noise: bool = True, leftover_noise: bool = True) -> tuple[Latent, LatentTrace]:
    """Run the sampler. Returns the final latent and the trace of the run.

    ``add_noise=False`` with a latent that is not empty continues a run that stopped at
    ``start_step`` (a base model's ``end_step``): no noise is drawn or added, as the SDXL
    pipelines' ``denoising_end`` / ``denoising_start`` hand-over.

    Under a ComfyUI schedule (``spec.schedule``) the run starts as ComfyUI's KSampler(Advanced)
    does (nodes/comfy_steps.py): its denoise, start/end step and add_noise semantics, and
    ``leftover_noise=False`` ends an ``end_step`` run at sigma 0 (return_with_leftover_noise off)."""
    import torch

    from .comfy_sigmas import is_comfy

    hooks = hooks or StepHooks()
    comfy = is_comfy(spec.schedule)
    unet, device, dtype = model.unet, model.device, model.dtype
    scheduler = build_scheduler(spec, model.scheduler_config, noise.seed)
    generator = noise.generator(device)
    samples = latent.samples.to(device=device, dtype=dtype)
    batch = samples.shape[0]

    do_cfg = cfg > 1.0 and negative is not None and unet.config.time_cond_proj_dim is None
    if comfy:  # ComfyUI guides at any cfg but 1 (below 1 too)
        do_cfg = abs(cfg - 1.0) > 1e-9 and negative is not None and unet.config.time_cond_proj_dim is None
    # SDXL pipelines turn an absent negative prompt into zeros (force_zeros_for_empty_prompt);
    # in a graph, an empty negative Text encode is how one says "no negative prompt".
    # ComfyUI encodes an empty prompt like any other.
    zero_negative = do_cfg and not comfy and model.zero_empty_negative and negative.empty_prompt
    cond = expand_batch(positive.embeds.to(device=device, dtype=dtype), batch)
    if do_cfg:
        uncond = (torch.zeros_like(cond) if zero_negative
                  else expand_batch(negative.embeds.to(device=device, dtype=dtype), batch))
        pad_chunk = positive.pad_chunk if positive.pad_chunk is not None else negative.pad_chunk
        cond, uncond = pad_to_same_length(cond, uncond, pad_chunk)
        embeds = torch.cat([uncond, cond])
    else:
        embeds = cond
    added = added_conditioning(model, positive, negative if do_cfg else None, zero_negative, samples.shape,
                               device, dtype) if model.takes_added_conditioning else ()

    inpaint_steps = unet_timesteps = None
    if comfy:
        from . import comfy_steps

        started = comfy_steps.begin(model, scheduler, spec, latent, noise, generator, denoise_strength, start_step,
                                    end_step, add_noise, leftover_noise, device, dtype)
        if started is None:  # denoise 0, or a start past the last step: nothing to do
            return latent, LatentTrace()
        scheduler, latents, unet_timesteps = started
        timesteps = scheduler.timesteps
    else:
        if not leftover_noise and end_step is not None and end_step >= 0:
            hooks.warn("leftover_noise off applies under a ComfyUI schedule only; this run stops at end_step "
                       "with its noise left")
        started = _diffusers_begin(model, scheduler, spec, latent, noise, generator, samples, denoise_strength,
                                   start_step, end_step, add_noise, device, dtype, hooks)
        if started is None:  # strength 0, or a start past the last step: nothing to do
            return latent, LatentTrace()
        latents, timesteps, inpaint_steps = started

    controls = ControlSteps(model, positive, negative, do_cfg, tuple(latents.shape), hooks.warn)
    combined = CombinedPrompts(model, positive, negative, do_cfg, tuple(latents.shape), device, dtype, batch)
    step_params = inspect.signature(scheduler.step).parameters
    extra: dict[str, Any] = {}
    if "generator" in step_params:
        extra["generator"] = generator
    if "eta" in step_params:
        extra["eta"] = 0.0

    trace = LatentTrace(scaling_factor=latent.scaling_factor, model_key=model.key)
    total = len(timesteps)
    copier = HostCopier(device)
    # One host buffer per run for the whole trace (pinned on CUDA: the copies run on a side
    # stream while the GPU goes on with the next step).
    latent_host = copier.empty((total + 1, *latents.shape), latents.dtype) if keep_trace else None
    x0_host = None
    if keep_trace:
        copier.copy(latents, ("latent", 0), out=latent_host[0])
    preview = hooks.preview
    if preview is not None:
        from .previews import latent_to_rgb_array

        # Previews are drawn on the host from the x0 copy: no extra GPU kernels per step.
        matrix, bias = hooks.preview_matrix

    def wants_preview(step: int) -> bool:
        return preview is not None and (step % hooks.preview_every == 0 or step == total - 1)

    def collect(items) -> None:
        for host, (kind, step) in items:
            if kind == "x0" and wants_preview(step):
                preview(latent_to_rgb_array(host[0].float(), matrix, bias), step)

    with torch.inference_mode():
        for i, t in enumerate(timesteps):
            hooks.check_cancel()
            model_input = torch.cat([latents] * 2) if do_cfg else latents
            model_input = scheduler.scale_model_input(model_input, t)
            # Under a ComfyUI schedule the UNet sees ComfyUI's timestep for the sigma, not diffusers'
            unet_t = t if unet_timesteps is None else unet_timesteps[i]
            residuals = controls.residuals(i, total, model_input, unet_t, embeds, added)
            if inpaint_steps is not None:
                model_input = inpaint_steps.unet_input(model_input, do_cfg)
            noise_pred = model.predict(model_input, unet_t, embeds, added, residuals)
            if combined.active:
                noise_pred = combined.average(noise_pred, model_input, unet_t)
            if do_cfg:
                noise_uncond, noise_text = noise_pred.chunk(2)
                noise_pred = noise_uncond + cfg * (noise_text - noise_uncond)
            out = scheduler.step(noise_pred, t, latents, **extra, return_dict=True)
            x0 = getattr(out, "pred_original_sample", None)
            if x0 is None and (keep_trace or preview is not None):
                x0 = predict_x0(scheduler, latents, noise_pred, t)
            latents = out.prev_sample
            if inpaint_steps is not None:
                latents = inpaint_steps.after_step(scheduler, latents, i, timesteps)
            if keep_trace:
                if x0_host is None:  # x0 may be fp32 where the latents are fp16 (Euler upcasts)
                    x0_host = copier.empty((total, *x0.shape), x0.dtype)
                copier.copy(latents, ("latent", i + 1), out=latent_host[i + 1])
                copier.copy(x0, ("x0", i), out=x0_host[i])
            elif wants_preview(i):
                copier.copy(x0[:1], ("x0", i))
            collect(copier.ready())
            hooks.progress(i + 1, total)
        collect(copier.drain())
    if keep_trace:
        # Unpinned fp32 copies: the trace lives on in caches and the inspector.
        trace.latents = list(latent_host.to(torch.float32, copy=True).unbind(0))
        trace.x0 = list(x0_host.to(torch.float32, copy=True).unbind(0)) if x0_host is not None else []
        seen = timesteps if unet_timesteps is None else unet_timesteps
        trace.timesteps = [float(t) for t in seen.tolist()]
    return Latent(latents, scaling_factor=latent.scaling_factor), trace


def _diffusers_begin(model: UNetModel, scheduler, spec: SchedulerSpec, latent: Latent, noise: NoiseSource,
                     generator, samples, denoise_strength: float, start_step: int, end_step: int, add_noise: bool,
                     device, dtype, hooks: StepHooks):
    """The diffusers pipelines' start of a run: ``(first latents, timesteps to run, inpainting
    helper or None)``, or None when there is nothing to run."""
    import torch
    from diffusers.utils.torch_utils import randn_tensor

    batch = samples.shape[0]
    scheduler.set_timesteps(spec.steps, device=device)
    timesteps = scheduler.timesteps
    order = scheduler.order
    continuing = not latent.empty and not add_noise
    img2img = not latent.empty and add_noise
    inpainting = img2img and latent.noise_mask is not None
    if continuing:
        first = max(0, start_step) * order
    elif img2img:
        # diffusers' img2img: keep the last `strength` fraction of the schedule.
        init = min(int(spec.steps * denoise_strength), spec.steps)
        t_start = max(spec.steps - init, 0)
        first = t_start * order
        if latent.mean is not None and not inpainting:  # VAE-encoded: sample from the run's generator first
            draw = randn_tensor(latent.mean.shape, generator=generator, device=torch.device(device),
                                dtype=latent.mean.dtype)
            samples = ((latent.mean + latent.std * draw) * latent.scaling_factor).to(dtype)
    else:
        first = max(0, start_step) * order
    timesteps = timesteps[first:]
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(first)
    if len(timesteps) == 0:
        return None
    if latent.noise_mask is not None and not inpainting:
        raise ValueError("input 'latent': a masked latent continued without new noise (add_noise off) "
                         "cannot keep its unmasked part; turn add_noise on")
    if not inpainting and inpainting_unet(model, samples.shape[1]):
        raise ValueError("input 'latent': this is an inpainting model (9 input channels): encode the image "
                         "and its mask with 'VAE encode (for inpaint)'")
    inpaint_steps = None
    if inpainting:
        from . import inpaint

        if noise.method != "diffusers":
            hooks.warn("an inpainting run draws its noise as diffusers' inpaint pipelines do, "
                       f"not by the noise's {noise.method} method")
        latents, inpaint_steps = inpaint.begin(model, latent, scheduler, generator, timesteps,
                                               first == 0 and denoise_strength >= 1.0, device, dtype)
    elif continuing:
        latents = samples
    else:
        initial_noise = noise.initial_noise(tuple(samples.shape), generator, device, dtype)
        if img2img:
            latents = scheduler.add_noise(samples, initial_noise, timesteps[:1].repeat(batch))
        elif first > 0:
            latents = scheduler.add_noise(torch.zeros_like(samples), initial_noise, timesteps[:1].repeat(batch))
        else:
            latents = initial_noise * scheduler.init_noise_sigma

    if end_step is not None and end_step >= 0:
        timesteps = timesteps[: max(0, end_step * order - first)]
    return latents, timesteps, inpaint_steps

