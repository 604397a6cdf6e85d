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
scheduler's, which for Euler are ComfyUI's k-diffusion Euler with EPS / v prediction.
"""

from __future__ import annotations

from typing import Any

from .comfy_sigmas import DISCARD_PENULTIMATE, discrete_sigmas, ksampler_sigmas, max_denoise, sampled_window
from .inpaint import inpainting_unet
from .schedulers import comfy_schedule_problem
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
          device, dtype) -> tuple[Any, Any] | None:
    """Set ``scheduler`` to the run's sigmas and return ``(first latents, the UNet's timestep per
    step)``, or None when there is nothing to sample (the latent passes through)."""
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
    scheduler.set_timesteps(sigmas=[float(s) for s in sigmas], device=device)
    kept = scheduler.sigmas.to("cpu", torch.float32)
    if kept.shape != sigmas.shape or not torch.allclose(kept, sigmas, rtol=1e-6, atol=0):
        raise ValueError(f"input 'scheduler': {spec.name} did not keep the custom sigmas it was given")
    scheduler.set_begin_index(0)
    unet_timesteps = table.timestep(sigmas[:-1]).to(device)

    samples = latent.samples.to(device=device, dtype=dtype)
    if latent.empty:
        samples = torch.zeros_like(samples)
    if not add_noise:
        return samples, unet_timesteps
    drawn = noise.initial_noise(tuple(samples.shape), generator, device, torch.float32)
    first = sigmas[0]
    scale = (1.0 + first ** 2) ** 0.5 if max_denoise(first, table) else first
    latents = (samples.float() + drawn * scale.to(device)).to(dtype)
    return latents, unet_timesteps
