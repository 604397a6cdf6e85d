"""The graph's images equal diffusers' pipelines (CPU, fp32, tiny random model)."""

import numpy as np
import pytest
import torch
from PIL import Image

import nodes  # noqa: F401
from graphs import Executor
from nodes.recipes import img2img_graph, txt2img_graph

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


def reference_scheduler(name, config, seed):
    """The diffusers scheduler for a UI name, written from diffusers' documentation (the
    A1111/k-diffusion equivalents table in diffusers' scheduler overview), never from
    nodes.schedulers: a wrong name -> class/options mapping there must fail these tests."""
    import diffusers as d

    documented = {
        "Euler": (d.EulerDiscreteScheduler, {}),
        "Euler a": (d.EulerAncestralDiscreteScheduler, {}),
        "DDIM": (d.DDIMScheduler, {}),
        "DPM++ 2M": (d.DPMSolverMultistepScheduler, {}),
        "DPM++ 2M Karras": (d.DPMSolverMultistepScheduler, {"use_karras_sigmas": True}),
        "DPM++ 2M SDE": (d.DPMSolverMultistepScheduler, {"algorithm_type": "sde-dpmsolver++"}),
        "DPM++ SDE": (d.DPMSolverSDEScheduler, {}),
        "DPM2": (d.KDPM2DiscreteScheduler, {}),
        "DPM2 a": (d.KDPM2AncestralDiscreteScheduler, {}),
        "UniPC": (d.UniPCMultistepScheduler, {}),
        "DEIS": (d.DEISMultistepScheduler, {}),
        "LMS": (d.LMSDiscreteScheduler, {}),
        "LMS Karras": (d.LMSDiscreteScheduler, {"use_karras_sigmas": True}),
        "Heun": (d.HeunDiscreteScheduler, {}),
        "PNDM": (d.PNDMScheduler, {}),
    }
    cls, options = documented[name]
    if cls is d.DPMSolverSDEScheduler:  # its Brownian tree is seeded apart from the generator
        options = {**options, "noise_sampler_seed": seed}
    return cls.from_config(config, **options)


def use_scheduler(target, name, seed, config):
    """Give a diffusers pipeline the documented scheduler for ``name``."""
    target.scheduler = reference_scheduler(name, config, seed)


def graph_image(result, preview_id):
    assert result.status == "finished", result.error and result.error.traceback
    return np.asarray(result.outputs[preview_id]["images"][0]).astype(int)


@pytest.mark.parametrize("name", ["Euler", "DDIM", "DPM++ 2M", "DPM++ 2M Karras", "DPM++ 2M SDE",
                                  "Euler a", "DPM++ SDE", "UniPC", "DEIS", "Heun", "LMS",
                                  "LMS Karras", "PNDM", "DPM2", "DPM2 a"])
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

    from nodes.prompts import tokenize_prompt

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


@pytest.fixture(scope="module")
def tiny_v(tmp_path_factory):
    """A tiny random SD 2.x-style model that predicts v (as 768-v models do)."""
    from nodes.tiny_models import make_tiny_sd

    return make_tiny_sd(tmp_path_factory.mktemp("tiny_v"), seed=1, prediction_type="v_prediction")


@pytest.mark.parametrize("prediction", ["auto", "epsilon"])
def test_v_prediction_and_its_override_match_the_pipeline(tiny_v, prediction):
    from diffusers import StableDiffusionPipeline

    graph, ids = txt2img_graph(str(tiny_v), prompt="a blue star", negative="blurry", seed=5, steps=STEPS)
    graph.set_param(ids["load"], "prediction", prediction)
    image = graph_image(Executor().run(graph), ids["preview"])
    pipe = StableDiffusionPipeline.from_pretrained(str(tiny_v), safety_checker=None, requires_safety_checker=False,
                                                   local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    config = dict(pipe.scheduler.config)
    assert config["prediction_type"] == "v_prediction"
    if prediction != "auto":
        config["prediction_type"] = prediction
    use_scheduler(pipe, "Euler", 5, config)
    expected = pipe("a blue star", negative_prompt="blurry", height=32, width=32, num_inference_steps=STEPS,
                    guidance_scale=7.5, generator=torch.Generator("cpu").manual_seed(5)).images[0]
    assert np.abs(image - np.asarray(expected).astype(int)).max() <= 1
