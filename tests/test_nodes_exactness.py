"""The graph's images equal diffusers' pipelines (CPU, fp32, tiny random model)."""

import numpy as np
import pytest
import torch
from PIL import Image
from sd_graphs import img2img_graph, txt2img_graph

import nodes  # noqa: F401
from graphs import Executor
from nodes.schedulers import build_scheduler, scheduler_spec

STEPS = 6


@pytest.fixture(scope="module")
def pipe(tiny_sd):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(str(tiny_sd), safety_checker=None,
                                                   requires_safety_checker=False,
                                                   local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    pipe.base_scheduler_config = dict(pipe.scheduler.config)
    return pipe


def use_scheduler(target, name, seed, config):
    """Give a diffusers pipeline the same scheduler the graph builds for ``name``."""
    target.scheduler = build_scheduler(scheduler_spec(name, STEPS), config, seed)


def graph_image(result, preview_id):
    assert result.status == "finished", result.error and result.error.traceback
    return np.asarray(result.outputs[preview_id]["images"][0]).astype(int)


@pytest.mark.parametrize("name", ["Euler", "DDIM", "DPM++ 2M Karras", "Euler a", "DPM++ SDE",
                                  "UniPC", "Heun", "LMS", "PNDM", "DPM2 a"])
def test_txt2img_matches_pipeline(tiny_sd, pipe, name):
    graph, ids = txt2img_graph(str(tiny_sd), prompt="a blue star", negative="blurry", seed=7,
                               scheduler=name, steps=STEPS, cfg=6.5)
    image = graph_image(Executor().run(graph), ids["preview"])
    use_scheduler(pipe, name, 7, pipe.base_scheduler_config)
    reference = pipe("a blue star", negative_prompt="blurry", height=32, width=32,
                     num_inference_steps=STEPS, guidance_scale=6.5,
                     generator=torch.Generator("cpu").manual_seed(7)).images[0]
    assert image.shape == (32, 32, 3)
    assert np.abs(image - np.asarray(reference).astype(int)).max() <= 1


def test_batch_of_two_matches_pipeline(tiny_sd, pipe):
    graph, ids = txt2img_graph(str(tiny_sd), seed=3, batch=2)
    result = Executor().run(graph)
    assert result.status == "finished"
    images = result.outputs[ids["preview"]]["images"]
    use_scheduler(pipe, "Euler", 3, pipe.base_scheduler_config)
    reference = pipe("a red circle", negative_prompt="", height=32, width=32,
                     num_inference_steps=STEPS, guidance_scale=7.5, num_images_per_prompt=2,
                     generator=torch.Generator("cpu").manual_seed(3)).images
    for ours, theirs in zip(images, reference, strict=True):
        assert np.abs(np.asarray(ours).astype(int) - np.asarray(theirs).astype(int)).max() <= 1


@pytest.mark.parametrize("name", ["Euler", "DDIM", "Euler a"])
def test_img2img_matches_pipeline(tiny_sd, pipe, tmp_path, name):
    from diffusers import StableDiffusionImg2ImgPipeline

    rng = np.random.default_rng(0)
    source = Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
    path = tmp_path / "input.png"
    source.save(path)
    graph, ids = img2img_graph(str(tiny_sd), str(path), strength=0.6, seed=11, scheduler=name,
                               steps=STEPS)
    image = graph_image(Executor().run(graph), ids["preview"])
    img2img = StableDiffusionImg2ImgPipeline(**pipe.components)
    img2img.set_progress_bar_config(disable=True)
    use_scheduler(img2img, name, 11, pipe.base_scheduler_config)
    reference = img2img("a red circle", image=Image.open(path), strength=0.6, negative_prompt="",
                        num_inference_steps=STEPS, guidance_scale=7.5,
                        generator=torch.Generator("cpu").manual_seed(11)).images[0]
    assert np.abs(image - np.asarray(reference).astype(int)).max() <= 1


@pytest.mark.parametrize("padding_side", ["right", "left"])
@pytest.mark.parametrize("text", ["", "a blue star", "a red circle " * 10])
def test_prompt_tokens_match_the_pipeline(tiny_sd, pipe, text, padding_side):
    import copy

    from nodes.diffusion import tokenize_prompt

    tokenizer = copy.deepcopy(pipe.tokenizer)
    tokenizer.padding_side = padding_side
    ids, mask, dropped = tokenize_prompt(tokenizer, text)
    reference = tokenizer(text, padding="max_length", max_length=tokenizer.model_max_length,
                          truncation=True, return_tensors="pt")
    assert ids.equal(reference.input_ids) and mask.equal(reference.attention_mask)
    untruncated = tokenizer(text, padding="longest", return_tensors="pt").input_ids
    cut = untruncated.shape[-1] > tokenizer.model_max_length
    assert bool(dropped) == cut
    if cut:  # what the pipeline's warning names as removed
        assert dropped == tokenizer.batch_decode(untruncated[:, tokenizer.model_max_length - 1:-1])[0]
