"""Inpainting: the graph's images equal diffusers' inpaint pipelines (SD and SDXL, CPU, fp32, tiny
random models) for normal 4-channel UNets (blended by the mask each step) and 9-channel
inpainting UNets, at full and part strength; Set latent noise mask; bad masks."""

import numpy as np
import pytest
import torch
from PIL import Image

import nodes  # noqa: F401
from graphs import Executor
from nodes.recipes import img2img_graph, inpaint_graph
from nodes.tiny_models import make_tiny_sd, make_tiny_sdxl

STEPS = 5
PROMPT, NEGATIVE = "a red fox", "blurry"


@pytest.fixture(scope="module")
def tiny_sd_inpainting(tmp_path_factory):
    return make_tiny_sd(tmp_path_factory.mktemp("tiny_sd_inpaint"), seed=2, inpainting=True)


@pytest.fixture(scope="module")
def tiny_sdxl_inpainting(tmp_path_factory):
    return make_tiny_sdxl(tmp_path_factory.mktemp("tiny_sdxl_inpaint"), seed=3, inpainting=True)


@pytest.fixture(scope="module")
def picture(tmp_path_factory):
    """A 32x32 photo-like image and a mask whose white rectangle sits on whole latent cells."""
    folder = tmp_path_factory.mktemp("inpaint_inputs")
    y, x = np.mgrid[0:32, 0:32]
    rgb = np.stack([x * 8, y * 8, (x + y) * 4], axis=-1).clip(0, 255).astype(np.uint8)
    Image.fromarray(rgb).save(folder / "image.png")
    mask = np.zeros((32, 32), np.uint8)
    mask[8:24, 6:20] = 255
    Image.fromarray(mask, "L").save(folder / "mask.png")
    return folder / "image.png", folder / "mask.png"


def graph_image(result, preview_id):
    assert result.status == "finished", result.error and result.error.traceback
    return np.asarray(result.outputs[preview_id]["images"][0]).astype(int)


def pipeline_image(pipeline_cls, folder, picture, strength, seed=11):
    from diffusers import EulerDiscreteScheduler

    extra = {} if "XL" in pipeline_cls.__name__ else {"safety_checker": None, "requires_safety_checker": False}
    pipe = pipeline_cls.from_pretrained(str(folder), local_files_only=True, **extra)
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)  # the graph's "Euler"
    pipe.set_progress_bar_config(disable=True)
    image, mask = (Image.open(p) for p in picture)
    out = pipe(PROMPT, negative_prompt=NEGATIVE, image=image.convert("RGB"), mask_image=mask, height=32, width=32,
               strength=strength, num_inference_steps=STEPS, guidance_scale=6.5,
               generator=torch.Generator("cpu").manual_seed(seed)).images[0]
    return np.asarray(out).astype(int)


def graph_inpaint(folder, picture, strength, seed=11):
    g, ids = inpaint_graph(str(folder), str(picture[0]), str(picture[1]), strength=strength, grow_mask_by=0,
                           prompt=PROMPT, negative=NEGATIVE, seed=seed, steps=STEPS, cfg=6.5)
    return graph_image(Executor().run(g), ids["preview"])


@pytest.mark.parametrize("strength", [1.0, 0.6])
@pytest.mark.parametrize("kind", ["normal", "inpainting"])
def test_sd_inpaint_matches_the_inpaint_pipeline(tiny_sd, tiny_sd_inpainting, picture, kind, strength):
    from diffusers import StableDiffusionInpaintPipeline

    folder = tiny_sd if kind == "normal" else tiny_sd_inpainting
    image = graph_inpaint(folder, picture, strength)
    expected = pipeline_image(StableDiffusionInpaintPipeline, folder, picture, strength)
    assert np.abs(image - expected).max() <= 1


@pytest.mark.parametrize("kind,strength", [("normal", 1.0), ("inpainting", 1.0), ("inpainting", 0.7)])
def test_sdxl_inpaint_matches_the_sdxl_inpaint_pipeline(tiny_sdxl, tiny_sdxl_inpainting, picture, kind, strength):
    from diffusers import StableDiffusionXLInpaintPipeline

    folder = tiny_sdxl if kind == "normal" else tiny_sdxl_inpainting
    image = graph_inpaint(folder, picture, strength)
    expected = pipeline_image(StableDiffusionXLInpaintPipeline, folder, picture, strength)
    assert np.abs(image - expected).max() <= 1


def test_the_mask_decides_what_changes(tiny_sd, picture, tmp_path):
    """A normal UNet keeps the unmasked part: two seeds differ under the mask only."""
    g, ids = inpaint_graph(str(tiny_sd), str(picture[0]), str(picture[1]), grow_mask_by=0, steps=STEPS, seed=1)
    ids["unet_out"] = ids["unet"]
    first = Executor().run(g, targets=[ids["unet"]]).outputs[ids["unet"]]["latent"].samples
    g.set_param(ids["noise"], "seed", 2)
    second = Executor().run(g, targets=[ids["unet"]]).outputs[ids["unet"]]["latent"].samples
    inside = torch.zeros(1, 1, 16, 16, dtype=torch.bool)
    inside[..., 4:12, 3:10] = True  # the mask's rectangle at latent size (scale 2)
    difference = (first - second).abs()
    assert difference[inside.expand_as(difference)].mean() > 0.1
    # outside: both are the image's latents drawn from each seed's generator: only the VAE's sampling noise differs
    assert difference[~inside.expand_as(difference)].mean() < difference[inside.expand_as(difference)].mean() / 3


def test_set_latent_noise_mask_on_an_encoded_image_matches_the_pipeline(tiny_sd, picture):
    """A binary mask on whole latent cells is the same mask the pipeline makes; Euler draws nothing
    after the noise, so the masked image the pipeline also encodes changes nothing."""
    from diffusers import StableDiffusionInpaintPipeline

    g, ids = img2img_graph(str(tiny_sd), str(picture[0]), strength=1.0, prompt=PROMPT, negative=NEGATIVE, seed=11,
                           steps=STEPS, cfg=6.5)
    mask = g.add_node(g.create_node("mask.load", params={"path": str(picture[1])}))
    noise_mask = g.add_node(g.create_node("sd.set_noise_mask"))
    g.connect(ids["encode"], "latent", noise_mask.id, "latent")
    g.connect(mask.id, "mask", noise_mask.id, "mask")
    g.connect(noise_mask.id, "latent", ids["unet"], "latent")
    image = graph_image(Executor().run(g), ids["preview"])
    expected = pipeline_image(StableDiffusionInpaintPipeline, tiny_sd, picture, 1.0)
    assert np.abs(image - expected).max() <= 1


def test_an_inpainting_model_without_the_masked_image_is_told_what_to_use(tiny_sd_inpainting, picture):
    g, ids = img2img_graph(str(tiny_sd_inpainting), str(picture[0]), strength=0.5, steps=2)
    result = Executor().run(g)
    assert result.status == "failed" and result.error.node_id == ids["unet"]
    assert "inpainting model (9 input channels)" in result.error.message
    assert "VAE encode (for inpaint)" in result.error.message


def test_a_mask_of_another_size_is_resized_with_a_note(tiny_sd, picture, tmp_path):
    small = tmp_path / "small_mask.png"
    Image.open(picture[1]).resize((16, 16)).save(small)
    g, ids = inpaint_graph(str(tiny_sd), str(picture[0]), str(small), steps=2)
    result = Executor().run(g)
    assert result.status == "finished", result.error and result.error.traceback
    assert any("mask was resized to the image" in w for w in result.warnings[ids["image"]])


def test_an_empty_mask_is_noted(tiny_sd, picture, tmp_path):
    empty = tmp_path / "empty.png"
    Image.new("L", (32, 32), 0).save(empty)
    g, ids = inpaint_graph(str(tiny_sd), str(picture[0]), str(empty), steps=2)
    result = Executor().run(g)
    assert result.status == "finished"
    assert any("nothing will be repainted" in w for w in result.warnings[ids["encode"]])
