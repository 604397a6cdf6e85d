"""Combine conditioning (ComfyUI's ConditioningCombine): UNet denoise averages the UNet's
predictions for the combined prompts. Checked against a hand-written Euler loop that does exactly
that with diffusers' own components on the tiny model."""

from __future__ import annotations

import numpy as np
import torch

import nodes  # noqa: F401
from graphs import Executor
from nodes.recipes import txt2img_graph

STEPS, SEED, CFG = 5, 3, 6.0


def reference(folder, prompts, negative):
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline
    from diffusers.utils.torch_utils import randn_tensor

    pipe = StableDiffusionPipeline.from_pretrained(str(folder), safety_checker=None, requires_safety_checker=False,
                                                   local_files_only=True)
    scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    with torch.no_grad():
        conds = [pipe.encode_prompt(p, "cpu", 1, False)[0] for p in prompts]
        uncond = pipe.encode_prompt(negative, "cpu", 1, False)[0]
        scheduler.set_timesteps(STEPS)
        generator = torch.Generator("cpu").manual_seed(SEED)
        latents = randn_tensor((1, 4, 16, 16), generator=generator) * scheduler.init_noise_sigma
        for t in scheduler.timesteps:
            x = scheduler.scale_model_input(latents, t)
            noise_uncond = pipe.unet(x, t, encoder_hidden_states=uncond).sample
            noise_text = sum(pipe.unet(x, t, encoder_hidden_states=c).sample for c in conds) / len(conds)
            latents = scheduler.step(noise_uncond + CFG * (noise_text - noise_uncond), t, latents).prev_sample
        image = pipe.vae.decode(latents / pipe.vae.config.scaling_factor).sample
    return ((image / 2 + 0.5).clamp(0, 1)[0].permute(1, 2, 0).numpy() * 255).round().astype(int)


def graph_image(folder, prompts, negative):
    graph, ids = txt2img_graph(str(folder), prompt=prompts[0], negative=negative, seed=SEED, steps=STEPS, cfg=CFG)
    feed = (ids["positive"], "conditioning")
    for text in prompts[1:]:
        encode = graph.add_node(graph.create_node("sd.text_encode", params={"text": text})).id
        graph.connect(ids["load"], "clip", encode, "clip")
        combine = graph.add_node(graph.create_node("sd.combine_conditioning")).id
        graph.connect(*feed, combine, "conditioning_1")
        graph.connect(encode, "conditioning", combine, "conditioning_2")
        feed = (combine, "conditioning")
    graph.connect(*feed, ids["unet"], "positive")
    result = Executor().run(graph)
    assert result.status == "finished", result.error and result.error.traceback
    return np.asarray(result.outputs[ids["preview"]]["images"][0]).astype(int)


def test_combined_prompts_average_the_unet_predictions(tiny_sd):
    prompts = ["a red circle", "a blue square", "green"]
    image = graph_image(tiny_sd, prompts, "blurry")
    assert np.abs(image - reference(tiny_sd, prompts, "blurry")).max() <= 2
    single = graph_image(tiny_sd, prompts[:1], "blurry")
    assert np.abs(image - single).mean() > 1  # the other prompts count
