"""UNet denoise under a ComfyUI schedule (the ComfyUI-compatible mode of imported graphs): how
ComfyUI's KSampler / KSamplerAdvanced start a run, written from its published behaviour.

- the sigmas: the schedule for ``int(steps / denoise)`` steps, its last ``steps`` + 1 kept, cut to
  ``end_step`` (its last sigma set to 0 unless noise is left over) and started at ``start_step``;
  they drive the diffusers scheduler as custom sigmas;
- the start: the latent (zeros for an empty one, a VAE encoding's mean: ComfyUI encodes to the
  distribution's mode) plus the noise times the first sigma, or times sqrt(1 + sigma^2) when the
  run starts at the model's largest sigma; with add_noise off, the latent as it is;
- the UNet's timestep for each sigma: the nearest entry of the model's log-sigma table, where
  diffusers interpolates (ComfyUI's ModelSamplingDiscrete).

The model input (x / sqrt(sigma^2 + 1)) and the step from the prediction are the diffusers
scheduler's where its class takes custom sigmas (Euler: ComfyUI's k-diffusion Euler with EPS / v
prediction); the schedulers whose class does not step as ComfyUI's own samplers
(nodes/comfy_samplers.py).
"""

from __future__ import annotations

from typing import Any

from .comfy_samplers import STEPPERS, KDiffusionSteps
from .comfy_sigmas import DISCARD_PENULTIMATE, discrete_sigmas, ksampler_sigmas, max_denoise, sampled_window
from .inpaint import inpainting_unet
from .schedulers import comfy_schedule_problem, takes_custom_sigmas
from .values import Latent, NoiseSource, SchedulerSpec, UNetModel


def run_sigmas(spec: SchedulerSpec, config: dict[str, Any], denoise: float, start_step: int, end_step: int,
               leftover_noise: bool):
    """``(table, sigmas)``: the model's sigma table and the float32 sigmas this run steps through
    (None: nothing to run)."""
    table = discrete_sigmas(config)
    sigmas = ksampler_sigmas(spec.schedule, spec.steps, table, denoise, spec.name in DISCARD_PENULTIMATE)
    if len(sigmas) < 2:
        return table, None
    window = sampled_window(sigmas, start_step if start_step > 0 else None,
                            end_step if end_step is not None and end_step >= 0 else None,
                            force_full_denoise=not leftover_noise)
    return table, window


def begin(model: UNetModel, scheduler, spec: SchedulerSpec, latent: Latent, noise: NoiseSource, generator,
          denoise: float, start_step: int, end_step: int, add_noise: bool, leftover_noise: bool,
          device, dtype) -> tuple[Any, Any, Any] | None:
    """``(the scheduler to step with, first latents, the UNet's timestep per call)``: ``scheduler``
    set to the run's sigmas, or ComfyUI's sampler in its place; None when there is nothing to
    sample (the latent passes through)."""
    import torch

    problem = comfy_schedule_problem(spec.name, spec.schedule)
    if problem:
        raise ValueError(f"input 'scheduler': {problem}")
    if latent.noise_mask is not None:
        raise ValueError("input 'latent': a masked latent (inpainting) does not run under a ComfyUI schedule yet; "
                         "use the 'model default' schedule")
    if inpainting_unet(model, latent.samples.shape[1]):
        raise ValueError("input 'latent': an inpainting model (9 input channels) does not run under a ComfyUI "
                         "schedule yet; use the 'model default' schedule")
    table, sigmas = run_sigmas(spec, model.scheduler_config, denoise, start_step, end_step, leftover_noise)
    if sigmas is None:
        return None
    if takes_custom_sigmas(spec.name):
        scheduler.set_timesteps(sigmas=[float(s) for s in sigmas], device=device)
        kept = scheduler.sigmas.to("cpu", torch.float32)
        if kept.shape != sigmas.shape or not torch.allclose(kept, sigmas, rtol=1e-6, atol=0):
            raise ValueError(f"input 'scheduler': {spec.name} did not keep the custom sigmas it was given")
        scheduler.set_begin_index(0)
        call_sigmas = sigmas[:-1]
    else:
        scheduler = KDiffusionSteps(STEPPERS[spec.name], sigmas, scheduler.config.prediction_type, noise.seed, device)
        call_sigmas = scheduler.call_sigmas
    unet_timesteps = table.timestep(call_sigmas).to(device)

    samples = latent.samples.to(device=device, dtype=dtype)
    if latent.empty:
        samples = torch.zeros_like(samples)
    if not add_noise:
        return scheduler, samples, unet_timesteps
    drawn = noise.initial_noise(tuple(samples.shape), generator, device, torch.float32)
    first = sigmas[0]
    scale = (1.0 + first ** 2) ** 0.5 if max_denoise(first, table) else first
    latents = (samples.float() + drawn * scale.to(device)).to(dtype)
    return scheduler, latents, unet_timesteps
