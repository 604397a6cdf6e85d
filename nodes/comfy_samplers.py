"""ComfyUI's k-diffusion samplers for the schedulers whose diffusers class takes no custom sigmas,
written from ComfyUI's published formulas (comfy/k_diffusion/sampling.py; no code copied): under a
ComfyUI schedule, Heun, DPM2, DPM2 a, LMS, DPM++ 2M and Euler a step as its heun, dpm_2,
dpm_2_ancestral, lms, dpmpp_2m and euler_ancestral do.

:class:`KDiffusionSteps` looks like a diffusers scheduler to the sampling loop (``timesteps``,
``scale_model_input``, ``step``): one entry per UNet call, so the two-call samplers (Heun, DPM2)
return their intermediate latent from the first call of a step, as diffusers' own Heun does.
The state is kept in float32, as ComfyUI keeps its latent.

Ancestral samplers add fresh noise after each step from a generator of their own on the run's
device, seeded with the Noise node's seed (plus one on the CPU), as ComfyUI's default noise
sampler does; CUDA's generator draws other numbers than the CPU's, so a GPU image matches
ComfyUI's on a GPU, not on the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Our scheduler names -> ComfyUI's sampler (the schedule, not the name, decides Karras sigmas)
STEPPERS = {
    "Heun": "heun", "DPM2": "dpm_2", "DPM2 a": "dpm_2_ancestral", "LMS": "lms", "LMS Karras": "lms",
    "DPM++ 2M": "dpmpp_2m", "DPM++ 2M Karras": "dpmpp_2m", "Euler a": "euler_ancestral",
}
TWO_CALLS = ("heun", "dpm_2", "dpm_2_ancestral")
ANCESTRAL = ("euler_ancestral", "dpm_2_ancestral")
LMS_ORDER = 4


@dataclass
class StepResult:
    prev_sample: Any
    pred_original_sample: Any


@dataclass
class _Call:
    step: int  # the step (sigma index) this UNet call belongs to
    stage: int  # 0: at sigmas[step]; 1: the second call of a two-call step
    sigma: Any  # 0-d float32 tensor: the sigma the UNet sees


def _ancestral(sigma_from, sigma_to):
    """(sigma_down, sigma_up) of an ancestral step with eta 1."""
    up = min(sigma_to, (sigma_to ** 2 * (sigma_from ** 2 - sigma_to ** 2) / sigma_from ** 2) ** 0.5)
    return (sigma_to ** 2 - up ** 2) ** 0.5, up


def _log_midpoint(a, b):
    return a.log().lerp(b.log(), 0.5).exp()


class KDiffusionSteps:
    """Steps as ComfyUI's ``kind`` sampler over ``sigmas`` (descending float32, usually ending in 0)."""

    order = 1

    def __init__(self, kind: str, sigmas, prediction_type: str, seed: int, device):
        import torch

        self.kind, self.prediction_type = kind, prediction_type
        self.sigmas = sigmas.to(torch.float32).cpu()
        self.device = torch.device(device)
        self.calls = self._plan()
        self.call_sigmas = torch.stack([c.sigma for c in self.calls])
        self.timesteps = torch.arange(len(self.calls))  # what the loop iterates; the UNet gets ComfyUI's
        self._index = 0
        self._x = self._d = self._dt = self._old = None
        self._history: list = []
        self._noise = None
        if kind in ANCESTRAL:  # ComfyUI's default noise sampler: its own generator on x's device
            self._noise = torch.Generator(self.device).manual_seed(
                (seed + 1) % 2**64 if self.device.type == "cpu" else seed)

    def _plan(self) -> list[_Call]:
        calls = []
        s = self.sigmas
        for i in range(len(s) - 1):
            calls.append(_Call(i, 0, s[i]))
            if self.kind == "heun" and s[i + 1] != 0:
                calls.append(_Call(i, 1, s[i + 1]))
            elif self.kind == "dpm_2" and s[i + 1] != 0:
                calls.append(_Call(i, 1, _log_midpoint(s[i], s[i + 1])))
            elif self.kind == "dpm_2_ancestral":
                down, _ = _ancestral(s[i], s[i + 1])
                if down != 0:
                    calls.append(_Call(i, 1, _log_midpoint(s[i], down)))
        return calls

    def set_begin_index(self, begin_index: int = 0) -> None:
        pass

    def scale_model_input(self, sample, timestep):
        sigma = self.calls[self._index].sigma.to(sample.device)
        return sample / (sigma ** 2 + 1) ** 0.5

    def _denoised(self, model_output, x, sigma):
        out = model_output.float()
        if self.prediction_type == "v_prediction":
            return x / (sigma ** 2 + 1) - out * sigma / (sigma ** 2 + 1) ** 0.5
        if self.prediction_type == "sample":
            return out
        return x - out * sigma

    def step(self, model_output, timestep, sample, return_dict: bool = True) -> StepResult:
        call = self.calls[self._index]
        self._index += 1
        device = sample.device
        s = self.sigmas.to(device)
        i = call.step
        sigma, sigma_next = s[i], s[i + 1]
        # The float32 latent this call was made at (the loop's copy may be in the model's dtype)
        x_call = self._x_call if call.stage == 1 else (self._x if self._x is not None else sample.float())
        denoised = self._denoised(model_output, x_call, call.sigma.to(device))
        kind = self.kind
        if call.stage == 1:
            x = self._finish(kind, x_call, denoised, call.sigma.to(device), sigma, sigma_next)
        elif kind == "heun" or kind == "dpm_2":
            d = (x_call - denoised) / sigma
            if sigma_next == 0:
                x = x_call + d * (sigma_next - sigma)
            else:  # the intermediate latent; the step ends at the next call
                self._x, self._d = x_call, d
                target = sigma_next if kind == "heun" else self.calls[self._index].sigma.to(device)
                self._x_call = x_call + d * (target - sigma)
                return self._out(self._x_call, denoised, sample.dtype, keep=False)
        elif kind == "dpm_2_ancestral":
            down, up = _ancestral(sigma, sigma_next)
            d = (x_call - denoised) / sigma
            if down == 0:
                x = x_call + d * (down - sigma)
            else:
                self._x, self._d, self._up, self._down = x_call, d, up, down
                self._x_call = x_call + d * (self.calls[self._index].sigma.to(device) - sigma)
                return self._out(self._x_call, denoised, sample.dtype, keep=False)
        elif kind == "euler_ancestral":
            down, up = _ancestral(sigma, sigma_next)
            if down == 0:
                x = denoised
            else:
                x = x_call + (x_call - denoised) / sigma * (down - sigma)
            if sigma_next > 0:
                x = x + self._fresh_noise(x) * up
        elif kind == "lms":
            x = self._lms(x_call, denoised, i)
        elif kind == "dpmpp_2m":
            x = self._dpmpp_2m(x_call, denoised, i, s)
        else:
            raise ValueError(f"unknown k-diffusion sampler {kind!r}")
        return self._out(x, denoised, sample.dtype)

    def _finish(self, kind, x2, denoised2, sigma2, sigma, sigma_next):
        x, d = self._x, self._d
        d2 = (x2 - denoised2) / sigma2
        if kind == "heun":
            return x + (d + d2) / 2 * (sigma_next - sigma)
        if kind == "dpm_2":
            return x + d2 * (sigma_next - sigma)
        x = x + d2 * (self._down - sigma)  # dpm_2_ancestral
        return x + self._fresh_noise(x) * self._up

    def _fresh_noise(self, x):
        import torch

        return torch.randn(x.shape, dtype=torch.float32, device=self.device, generator=self._noise).to(x.device)

    def _lms(self, x, denoised, i):
        import numpy as np
        from scipy import integrate

        self._history.append((x - denoised) / self.sigmas[i].to(x.device))
        if len(self._history) > LMS_ORDER:
            self._history.pop(0)
        order = min(i + 1, LMS_ORDER)
        t = self.sigmas.numpy().astype(np.float32)

        def coefficient(j: int) -> float:
            def basis(tau):
                product = 1.0
                for k in range(order):
                    if k != j:
                        product *= (tau - t[i - k]) / (t[i - j] - t[i - k])
                return product
            return integrate.quad(basis, t[i], t[i + 1], epsrel=1e-4)[0]

        return x + sum(coefficient(j) * d for j, d in enumerate(reversed(self._history)))

    def _dpmpp_2m(self, x, denoised, i, s):
        sigma, sigma_next = s[i], s[i + 1]
        t, t_next = -sigma.log(), -sigma_next.log()
        h = t_next - t
        ratio = (-t_next).exp() / (-t).exp()
        if self._old is None or sigma_next == 0:
            x = ratio * x - (-h).expm1() * denoised
        else:
            r = (t - (-s[i - 1].log())) / h
            blended = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * self._old
            x = ratio * x - (-h).expm1() * blended
        self._old = denoised
        return x

    def _out(self, x, denoised, dtype, keep: bool = True) -> StepResult:
        if keep:
            self._x = x
        return StepResult(x.to(dtype), denoised)
