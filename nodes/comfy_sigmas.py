"""ComfyUI's sigma schedules, written from its published formulas (ComfyUI is GPL-3.0; no code of
it is copied here): the discrete sigma table its ``ModelSamplingDiscrete`` builds from a model's
betas, its sigma <-> timestep maps, the schedules its KSampler offers (normal, karras, exponential,
simple, sgm_uniform, ddim_uniform, beta) and how KSampler / KSamplerAdvanced cut a schedule
(denoise, start and end step, return with leftover noise).

Pure functions; torch, numpy and scipy are imported inside them (``import nodes`` loads no torch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

MODEL_DEFAULT = "model default"
COMFY_SCHEDULES = ("normal", "karras", "exponential", "simple", "sgm_uniform", "ddim_uniform", "beta")
SCHEDULES = (MODEL_DEFAULT, *COMFY_SCHEDULES)
# ComfyUI samplers that compute one step more and drop the penultimate sigma (its KSampler's
# DISCARD_PENULTIMATE_SIGMA_SAMPLERS), by our scheduler names
DISCARD_PENULTIMATE = frozenset({"DPM2", "DPM2 a", "UniPC"})


def is_comfy(schedule: str) -> bool:
    """A ComfyUI schedule (UNet denoise then samples the way ComfyUI does)."""
    return schedule in COMFY_SCHEDULES


@dataclass(frozen=True, eq=False)
class DiscreteSigmas:
    """A discrete-time model's sigma table as ComfyUI keeps it: float32 sigmas, ascending (index =
    training timestep), and their logs taken in float64 before the cast."""

    sigmas: Any
    log_sigmas: Any

    @property
    def sigma_min(self) -> float:
        return float(self.sigmas[0])

    @property
    def sigma_max(self) -> float:
        return float(self.sigmas[-1])

    def timestep(self, sigma):
        """The training timestep for each sigma: the index of the nearest log sigma (no
        interpolation), as a float32 tensor."""
        import torch

        sigma = torch.as_tensor(sigma, dtype=torch.float32)
        distance = (sigma.log().reshape(1, -1) - self.log_sigmas.reshape(-1, 1)).abs()
        return distance.argmin(dim=0).reshape(sigma.shape).to(torch.float32)

    def sigma(self, timestep):
        """Sigma at a (fractional) timestep: log sigma interpolated linearly between the two
        neighbouring table entries."""
        import torch

        t = torch.as_tensor(timestep, dtype=torch.float32).clamp(0, len(self.sigmas) - 1)
        low, high, weight = t.floor().long(), t.ceil().long(), t.frac()
        return ((1 - weight) * self.log_sigmas[low] + weight * self.log_sigmas[high]).exp()


def discrete_sigmas(config: dict[str, Any]) -> DiscreteSigmas:
    """The sigma table for a diffusers scheduler config (beta_start, beta_end, beta_schedule,
    num_train_timesteps or trained_betas), computed in float64 as ComfyUI does: diffusers'
    scaled_linear is ComfyUI's "linear" (square of a linspace of square roots), diffusers' linear
    its "sqrt_linear"."""
    import torch

    if config.get("rescale_betas_zero_snr"):
        raise ValueError("ComfyUI schedules: this model's scheduler rescales to zero terminal SNR, "
                         "which they do not support; use the 'model default' schedule")
    count = int(config.get("num_train_timesteps", 1000))
    start, end = float(config.get("beta_start", 0.00085)), float(config.get("beta_end", 0.012))
    kind = config.get("beta_schedule", "scaled_linear")
    if config.get("trained_betas") is not None:
        betas = torch.tensor(config["trained_betas"], dtype=torch.float64)
    elif kind == "scaled_linear":
        betas = torch.linspace(start ** 0.5, end ** 0.5, count, dtype=torch.float64) ** 2
    elif kind == "linear":
        betas = torch.linspace(start, end, count, dtype=torch.float64)
    elif kind == "squaredcos_cap_v2":
        s = 0.008
        steps = torch.arange(count + 1, dtype=torch.float64) / count + s
        alphas = torch.cos(steps / (1 + s) * math.pi / 2) ** 2
        betas = (1 - alphas[1:] / alphas[:-1]).clamp(0, 0.999)
    else:
        raise ValueError(f"ComfyUI schedules: beta schedule {kind!r} is not supported; "
                         "use the 'model default' schedule")
    cumulative = torch.cumprod(1.0 - betas, dim=0)
    sigmas = ((1 - cumulative) / cumulative) ** 0.5
    return DiscreteSigmas(sigmas.float(), sigmas.log().float())


def _with_zero(values) -> Any:
    import torch

    return torch.cat([values.to(torch.float32), torch.zeros(1)])


def schedule_sigmas(schedule: str, steps: int, table: DiscreteSigmas) -> Any:
    """ComfyUI's ``calculate_sigmas``: descending float32 sigmas ending in 0 (``steps`` + 1 of
    them, except ddim_uniform and beta, whose count follows from the table)."""
    import torch

    if steps <= 0:
        return torch.zeros(0)
    if schedule in ("normal", "sgm_uniform"):
        first, last = table.timestep(table.sigmas[-1]), table.timestep(table.sigmas[0])
        if schedule == "sgm_uniform":
            times = torch.linspace(float(first), float(last), steps + 1)[:-1]
        else:
            times = torch.linspace(float(first), float(last), steps)
        # (ComfyUI leaves the 0 off when the table's smallest sigma is 0, which no beta schedule
        # here gives)
        return _with_zero(torch.stack([table.sigma(t) for t in times]))
    if schedule == "karras":
        rho = 7.0
        ramp = torch.linspace(0, 1, steps)
        low, high = table.sigma_min ** (1 / rho), table.sigma_max ** (1 / rho)
        return _with_zero((high + ramp * (low - high)) ** rho)
    if schedule == "exponential":
        return _with_zero(torch.linspace(math.log(table.sigma_max), math.log(table.sigma_min), steps).exp())
    if schedule == "simple":
        stride = len(table.sigmas) / steps
        return _with_zero(torch.stack([table.sigmas[-(1 + int(x * stride))] for x in range(steps)]))
    if schedule == "ddim_uniform":
        stride = max(len(table.sigmas) // steps, 1)
        picked = table.sigmas[1::stride]
        return _with_zero(picked.flip(0))
    if schedule == "beta":
        return _beta(steps, table, 0.6, 0.6)
    raise ValueError(f"unknown ComfyUI schedule {schedule!r} (known: {', '.join(COMFY_SCHEDULES)})")


def _beta(steps: int, table: DiscreteSigmas, alpha: float, beta: float):
    """The beta schedule (arXiv 2407.12173): timesteps at quantiles of a Beta(alpha, beta)
    distribution, rounded; a timestep equal to the one before is left out."""
    import numpy as np
    import torch
    from scipy import stats

    last_index = len(table.sigmas) - 1
    quantiles = 1 - np.linspace(0, 1, steps, endpoint=False)
    times = np.rint(stats.beta.ppf(quantiles, alpha, beta) * last_index)
    kept, previous = [], None
    for t in times:
        if t != previous:
            kept.append(int(t))
        previous = t
    return _with_zero(table.sigmas[torch.tensor(kept, dtype=torch.long)])


def ksampler_sigmas(schedule: str, steps: int, table: DiscreteSigmas, denoise: float = 1.0,
                    discard_penultimate: bool = False) -> Any:
    """The sigmas ComfyUI's KSampler runs for ``steps`` at ``denoise``: below 1, a schedule of
    ``int(steps / denoise)`` steps of which the last ``steps`` + 1 sigmas are kept (none at 0)."""
    import torch

    def full(count: int):
        if discard_penultimate:
            sigmas = schedule_sigmas(schedule, count + 1, table)
            return torch.cat([sigmas[:-2], sigmas[-1:]])
        return schedule_sigmas(schedule, count, table)

    if denoise > 0.9999:
        return full(steps)
    if denoise <= 0.0:
        return torch.zeros(0)
    return full(int(steps / denoise))[-(steps + 1):]


def sampled_window(sigmas, start_step: int | None = None, end_step: int | None = None,
                   force_full_denoise: bool = False):
    """The part of ``sigmas`` KSamplerAdvanced samples: up to ``end_step`` (its last sigma set to
    0 when ``force_full_denoise``, i.e. return_with_leftover_noise off), then from ``start_step``.
    None: nothing to sample (the latent passes through unchanged)."""
    sigmas = sigmas.clone()
    if end_step is not None and end_step < len(sigmas) - 1:
        sigmas = sigmas[:end_step + 1]
        if force_full_denoise:
            sigmas[-1] = 0
    if start_step is not None:
        if start_step >= len(sigmas) - 1:
            return None
        sigmas = sigmas[start_step:]
    return sigmas if len(sigmas) > 1 else None


def max_denoise(first_sigma: float, table: DiscreteSigmas) -> bool:
    """Whether a run starts at the model's largest sigma (or above): ComfyUI then scales the
    initial noise by sqrt(1 + sigma^2) rather than by sigma."""
    first = float(first_sigma)
    return math.isclose(table.sigma_max, first, rel_tol=1e-05) or first > table.sigma_max
