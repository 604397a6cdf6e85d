"""Scheduler names users know (A1111/ComfyUI) mapped onto diffusers' own scheduler classes."""

from __future__ import annotations

import copy
import functools
import inspect
import json
from typing import Any

from .values import SchedulerSpec

# UI name -> (diffusers class name, fixed options)
SCHEDULERS: dict[str, tuple[str, dict[str, Any]]] = {
    "Euler": ("EulerDiscreteScheduler", {}),
    "Euler a": ("EulerAncestralDiscreteScheduler", {}),
    "DDIM": ("DDIMScheduler", {}),
    "DPM++ 2M": ("DPMSolverMultistepScheduler", {}),
    "DPM++ 2M Karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
    "DPM++ 2M SDE": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}),
    "DPM++ 2M SDE Karras": ("DPMSolverMultistepScheduler",
                            {"algorithm_type": "sde-dpmsolver++", "use_karras_sigmas": True}),
    "DPM++ SDE": ("DPMSolverSDEScheduler", {}),
    "DPM++ SDE Karras": ("DPMSolverSDEScheduler", {"use_karras_sigmas": True}),
    "DPM2": ("KDPM2DiscreteScheduler", {}),
    "DPM2 a": ("KDPM2AncestralDiscreteScheduler", {}),
    "UniPC": ("UniPCMultistepScheduler", {}),
    "DEIS": ("DEISMultistepScheduler", {}),
    "LMS": ("LMSDiscreteScheduler", {}),
    "LMS Karras": ("LMSDiscreteScheduler", {"use_karras_sigmas": True}),
    "Heun": ("HeunDiscreteScheduler", {}),
    "PNDM": ("PNDMScheduler", {}),
    "DDPM": ("DDPMScheduler", {}),
}
SCHEDULER_NAMES = tuple(SCHEDULERS)
SPACINGS = ("model default", "leading", "linspace", "trailing")


def scheduler_spec(name: str, steps: int, karras: bool = False,
                   spacing: str = "model default", schedule: str = "model default") -> SchedulerSpec:
    """The SCHEDULER value for a UI choice (what the Scheduler node outputs)."""
    return SchedulerSpec(name, steps, tuple(sorted(scheduler_options(name, karras, spacing).items())), schedule)


@functools.cache
def takes_custom_sigmas(name: str) -> bool:
    """Whether the diffusers class behind a UI name runs a sigma schedule it is given
    (``set_timesteps(sigmas=...)``, kept as given). Tried, not assumed: a class may declare the
    argument and refuse it (UniPC takes sigmas only for flow-matching models)."""
    import diffusers

    class_name, fixed = SCHEDULERS[name]
    cls = getattr(diffusers, class_name)
    if "sigmas" not in inspect.signature(cls.set_timesteps).parameters:
        return False
    accepted = set(inspect.signature(cls.__init__).parameters)
    trial = [10.0, 2.0, 0.5, 0.0]
    try:
        scheduler = cls(**{k: v for k, v in fixed.items() if k in accepted})
        scheduler.set_timesteps(sigmas=trial)
    except (TypeError, ValueError):
        return False
    kept = [float(s) for s in scheduler.sigmas]
    return len(kept) == len(trial) and all(abs(a - b) <= 1e-6 * max(1.0, b) for a, b in zip(kept, trial))


def comfy_schedule_problem(name: str, schedule: str) -> str | None:
    """Why ComfyUI's ``schedule`` cannot run on the scheduler ``name`` (None: it can: its diffusers
    class takes the sigmas, or it steps as one of ComfyUI's own samplers, nodes/comfy_samplers.py)."""
    from .comfy_samplers import STEPPERS

    if schedule == "model default" or takes_custom_sigmas(name) or name in STEPPERS:
        return None
    usable = ", ".join(n for n in SCHEDULERS if takes_custom_sigmas(n) or n in STEPPERS)
    return (f"the {name} scheduler (diffusers' {SCHEDULERS[name][0]}) cannot take custom sigmas, so it cannot "
            f"run ComfyUI's '{schedule}' schedule; use a scheduler that can ({usable}), or the "
            f"'model default' schedule")


def scheduler_options(name: str, karras: bool, spacing: str) -> dict[str, Any]:
    """The from_config overrides for a UI name plus the user's options."""
    _, fixed = SCHEDULERS[name]
    options = dict(fixed)
    if karras:
        options["use_karras_sigmas"] = True
    if spacing != "model default":
        options["timestep_spacing"] = spacing
    return options


def build_scheduler(spec: SchedulerSpec, config: dict[str, Any], seed: int | None = None):
    """A fresh diffusers scheduler for ``spec`` from the model's scheduler config.

    ``seed`` makes SDE samplers reproducible: diffusers' DPM++ SDE otherwise seeds its
    Brownian tree from the global RNG, so the same seed would give a different image.
    """
    import diffusers

    class_name, _ = SCHEDULERS[spec.name]
    cls = getattr(diffusers, class_name)
    accepted = set(inspect.signature(cls.__init__).parameters)
    options = {k: v for k, v in spec.options if k in accepted}
    if seed is not None and "noise_sampler_seed" in accepted:
        options["noise_sampler_seed"] = seed % 2**63
    # Schedulers are copied from a pristine template: from_config validates the whole config each
    # time, a cost paid before every run's first step (docs/benchmarks.md has the numbers).
    key = json.dumps([class_name, config, sorted(options.items())], sort_keys=True, default=repr)
    template = _TEMPLATES.get(key)
    if template is None:
        template = cls.from_config(config, **options)
        if len(_TEMPLATES) >= 32:
            _TEMPLATES.clear()
        _TEMPLATES[key] = template
    return copy.deepcopy(template)


_TEMPLATES: dict[str, Any] = {}
