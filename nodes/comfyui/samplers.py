"""ComfyUI's samplers as our Noise + Scheduler + UNet denoise: KSampler, KSamplerAdvanced and
SamplerCustom (with the KSamplerSelect and sigma-schedule nodes that feed it), run in the
ComfyUI-compatible mode (Noise's ``method``, Scheduler's ``schedule``).

``SAMPLERS`` maps ComfyUI's ``sampler_name`` to our scheduler; where ours is not the same
algorithm the note says what differs and the node gets the nearest one (a placeholder would
stop a whole shared workflow for a sampler choice the user can change in one click)."""

from __future__ import annotations

from typing import Any

from .build import SAMPLER_COLUMN, NodeBuild

# sampler_name -> (our Scheduler name, what differs or "")
SAMPLERS: dict[str, tuple[str, str]] = {
    "euler": ("Euler", ""),
    "euler_ancestral": ("Euler a", ""),
    "heun": ("Heun", ""),
    "dpm_2": ("DPM2", ""),
    "dpm_2_ancestral": ("DPM2 a", ""),
    "lms": ("LMS", ""),
    "dpmpp_2m": ("DPM++ 2M", ""),
    "dpmpp_2m_sde": ("DPM++ 2M SDE", ""),
    "dpmpp_2m_sde_gpu": ("DPM++ 2M SDE", "its noise is drawn on the CPU here"),
    "dpmpp_sde": ("DPM++ SDE", ""),
    "dpmpp_sde_gpu": ("DPM++ SDE", "its noise is drawn on the CPU here"),
    "ddim": ("Euler", "ComfyUI's ddim is its Euler sampler"),
    "uni_pc": ("UniPC", "diffusers' UniPC (bh2) stands in for ComfyUI's uni_pc (bh1)"),
    "uni_pc_bh2": ("UniPC", ""),
    "deis": ("DEIS", ""),
    "dpmpp_2s_ancestral": ("Euler a", "no DPM++ 2S ancestral here: Euler a, another ancestral sampler, instead"),
    "dpmpp_3m_sde": ("DPM++ 2M SDE", "no DPM++ 3M SDE here: DPM++ 2M SDE instead"),
    "dpmpp_3m_sde_gpu": ("DPM++ 2M SDE", "no DPM++ 3M SDE here: DPM++ 2M SDE instead"),
    "heunpp2": ("Heun", "no Heun++ here: Heun instead"),
    "ipndm": ("PNDM", "no iPNDM here: PNDM instead"),
    "ipndm_v": ("PNDM", "no iPNDM here: PNDM instead"),
    "res_multistep": ("DPM++ 2M", "no res_multistep here: DPM++ 2M, also a second-order multistep sampler"),
    "lcm": ("Euler", "no LCM sampler here: Euler instead (use an LCM model's own scheduler)"),
    "euler_cfg_pp": ("Euler", "no CFG++ here: plain Euler (set cfg near 7 instead of near 1)"),
    "euler_ancestral_cfg_pp": ("Euler a", "no CFG++ here: plain Euler a (set cfg near 7 instead of near 1)"),
    "dpm_fast": ("DPM++ 2M", "no dpm_fast here: DPM++ 2M instead"),
    "dpm_adaptive": ("DPM++ 2M", "no dpm_adaptive here: DPM++ 2M instead"),
}
SCHEDULES = ("normal", "karras", "exponential", "simple", "sgm_uniform", "ddim_uniform", "beta")
INPAINT_LATENTS = ("VAEEncodeForInpaint", "SetLatentNoiseMask")
SEED_CONTROLS = {"fixed": "fixed", "increment": "increment", "decrement": "decrement", "randomize": "randomize"}


def _sampler(build: NodeBuild, name: Any) -> str:
    ours, difference = SAMPLERS.get(str(name), ("Euler", f"unknown sampler {name!r}: Euler instead"))
    if difference:
        build.sampler_note(f"{name}: {difference}")
    return ours


def _schedule(build: NodeBuild, name: Any) -> str:
    if name in SCHEDULES:
        return str(name)
    build.sampler_note(f"scheduler {name!r} has no equivalent: 'normal' instead")
    return "normal"


def comfy_schedule_ready(scheduler: str) -> bool:
    """Whether our scheduler runs ComfyUI's sigma schedules (diffusers' Euler takes them; the
    others step as ComfyUI's own samplers do, nodes/comfy_samplers.py)."""
    from ..comfy_samplers import STEPPERS

    return scheduler == "Euler" or scheduler in STEPPERS


def sampler_nodes(build: NodeBuild, seed: Any, control: Any, steps: Any, cfg: Any, sampler: str,
                  schedule: str, denoise: Any = 1.0, unet_params: dict[str, Any] | None = None,
                  add_noise: bool = True) -> tuple[str, str, str]:
    """Noise, Scheduler and UNet denoise for one ComfyUI sampler node, wired to each other, in the
    ComfyUI-compatible mode where our scheduler can run it; else in diffusers' own (said in the report)."""
    comfy = comfy_schedule_ready(sampler)
    latent_source = build.source("latent_image")
    if comfy and latent_source is not None and latent_source.class_type in INPAINT_LATENTS:
        comfy = False  # our inpainting follows diffusers' pipelines, which ComfyUI's schedules cannot drive
        build.sampler_note("an inpainting latent runs with diffusers' inpaint steps and schedule here, so the "
                           "image differs from ComfyUI's")
    elif not comfy:
        build.sampler_note(f"{sampler} cannot run ComfyUI's schedules here: it runs diffusers' own "
                           f"{'Karras ' if schedule == 'karras' else ''}schedule and noise, so the image differs "
                           "from ComfyUI's")
    noise_params: dict[str, Any] = {"seed": int(seed) % 2**64 if isinstance(seed, int) else 0,
                                    "control": SEED_CONTROLS.get(str(control), "fixed"),
                                    "method": "comfyui" if comfy else "diffusers"}
    scheduler_params: dict[str, Any] = {"name": sampler, "steps": int(steps)}
    if comfy:
        scheduler_params["schedule"] = schedule
    else:
        scheduler_params["karras"] = schedule == "karras"
    unet = build.add("sd.unet_denoise", {"cfg": float(cfg), "denoise": float(denoise), "add_noise": add_noise,
                                         **(unet_params or {})}, key="", title=build.node.title or "UNet denoise",
                     offset=(SAMPLER_COLUMN, 0.0))
    noise = build.add("sd.noise", noise_params, key="noise", title="Noise")
    scheduler = build.add("sd.scheduler", scheduler_params, key="scheduler", title="Scheduler", offset=(0.0, 180.0))
    build.builder.links.append({"id": f"i{noise}", "from": [noise, "noise"], "to": [unet, "noise"]})
    build.builder.links.append({"id": f"i{scheduler}", "from": [scheduler, "scheduler"], "to": [unet, "scheduler"]})
    for ours, theirs in (("model", "model"), ("positive", "positive"), ("negative", "negative"),
                         ("latent", "latent_image")):
        build.inputs[theirs] = (unet, ours)
    build.inputs["seed"] = build.inputs["noise_seed"] = (noise, "seed")
    build.inputs["steps"] = (scheduler, "steps")
    build.inputs["cfg"] = (unet, "cfg")
    build.outputs[0] = (unet, "latent")
    return noise, scheduler, unet


def map_ksampler(build: NodeBuild) -> None:
    v = build.values
    sampler_nodes(build, v["seed"], v.get("control_after_generate"), v["steps"], v["cfg"],
                  _sampler(build, v["sampler_name"]), _schedule(build, v["scheduler"]), v["denoise"])


def map_ksampler_advanced(build: NodeBuild) -> None:
    v = build.values
    steps = int(v["steps"])
    end = int(v["end_at_step"])
    unet = {"start_step": int(v["start_at_step"]), "end_step": -1 if end >= steps else end}
    if unet["end_step"] != -1:
        unet["leftover_noise"] = v["return_with_leftover_noise"] == "enable"
    sampler_nodes(build, v["noise_seed"], v.get("control_after_generate"), steps, v["cfg"],
                  _sampler(build, v["sampler_name"]), _schedule(build, v["scheduler"]), 1.0, unet,
                  add_noise=v["add_noise"] == "enable")


def map_sampler_custom(build: NodeBuild) -> bool | None:
    """SamplerCustom takes its sampler and sigmas from nodes of their own; ours are one Scheduler."""
    v = build.values
    picker, sigmas = build.source("sampler"), build.source("sigmas")
    if picker is None or picker.class_type != "KSamplerSelect" or sigmas is None or \
            sigmas.class_type not in ("BasicScheduler", "KarrasScheduler", "SDTurboScheduler"):
        build.why_not = "its sampler or sigmas come from nodes that have no equivalent here"
        return False
    builder = build.builder
    from .widgets import name_widgets

    sv = name_widgets(picker.class_type, picker.widget_list, picker.widgets, [], set(picker.links))
    gv = name_widgets(sigmas.class_type, sigmas.widget_list, sigmas.widgets, [], set(sigmas.links))
    denoise = float(gv.get("denoise", 1.0))
    if sigmas.class_type == "BasicScheduler":
        schedule, steps = _schedule(build, gv["scheduler"]), gv["steps"]
    elif sigmas.class_type == "KarrasScheduler":
        schedule, steps = "karras", gv["steps"]
        build.guess(f"KarrasScheduler's own sigma range ({gv['sigma_min']}..{gv['sigma_max']}, rho {gv['rho']}) "
                    "is the model's range here")
    else:
        schedule, steps = "simple", gv["steps"]
        build.sampler_note("SDTurboScheduler: its 999, 899, ... timesteps are ComfyUI's 'simple' schedule "
                           "here (the same at 1 and 10 steps, close between)")
    sampler_nodes(build, v["noise_seed"], v.get("control_after_generate"), steps, v["cfg"],
                  _sampler(build, sv["sampler_name"]), schedule, denoise, add_noise=bool(v["add_noise"]))
    build.absorbed_names.update(("sampler", "sigmas"))
    for absorbed in (picker, sigmas):
        if all(consumer.class_type == "SamplerCustom" for consumer, _ in builder.graph.consumers(absorbed.id)):
            builder.absorbed.add(absorbed.id)
    build.outputs[1] = build.outputs[0]  # denoised_output: the same latent at the end of sampling
    return None


def map_absorbed(build: NodeBuild) -> bool | None:
    """KSamplerSelect and the sigma schedulers make nothing of their own: the SamplerCustom they
    feed reads them. Feeding anything else, they stay as placeholders."""
    graph = build.builder.graph
    consumers = graph.consumers(build.node.id)
    if consumers and all(consumer.class_type == "SamplerCustom" for consumer, _ in consumers):
        build.builder.absorbed.add(build.node.id)
        return None
    build.why_not = f"{build.node.class_type} is read by SamplerCustom here; it feeds something else"
    return False
