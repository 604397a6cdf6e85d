"""SDXL in the graph (issue 27): the same node chain as SD 1.x gives the images of diffusers' SDXL
pipelines (CPU, fp32, tiny random models built from configs), the refiner included."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_nodes_exactness import graph_image, reference_scheduler

import nodes  # noqa: F401
from graphs import Executor
from nodes.families.catalog import FAMILIES
from nodes.recipes import img2img_graph, txt2img_graph

ROOT = Path(__file__).resolve().parent.parent
STEPS = 5


@pytest.fixture(scope="module")
def pipe(tiny_sdxl):
    from diffusers import StableDiffusionXLPipeline

    pipe = StableDiffusionXLPipeline.from_pretrained(str(tiny_sdxl), local_files_only=True, add_watermarker=False)
    pipe.set_progress_bar_config(disable=True)
    pipe.base_scheduler_config = dict(pipe.scheduler.config)
    return pipe


def reference(pipe, name, seed, **kwargs):
    pipe.scheduler = reference_scheduler(name, pipe.base_scheduler_config, seed)
    images = pipe(height=32, width=32, num_inference_steps=STEPS, generator=torch.Generator("cpu").manual_seed(seed),
                  **kwargs).images
    return [np.asarray(image).astype(int) for image in images]


@pytest.mark.parametrize("name", ["Euler", "DPM++ 2M Karras", "Euler a", "DDIM"])
def test_sdxl_txt2img_matches_the_pipeline(tiny_sdxl, pipe, name):
    graph, ids = txt2img_graph(str(tiny_sdxl), prompt="a blue star", negative="blurry", seed=7, scheduler=name,
                               steps=STEPS, cfg=6.5)
    image = graph_image(Executor().run(graph), ids["preview"])
    expected, = reference(pipe, name, 7, prompt="a blue star", negative_prompt="blurry", guidance_scale=6.5)
    assert image.shape == (32, 32, 3)
    assert np.abs(image - expected).max() <= 1


def test_an_empty_negative_prompt_is_the_pipelines_absent_one(tiny_sdxl, pipe):
    """force_zeros_for_empty_prompt: the base pipeline conditions on zeros when no negative prompt is
    given, which is what an empty negative Text encode means in a graph (not the encoded "")."""
    graph, ids = txt2img_graph(str(tiny_sdxl), prompt="a red circle", negative="", seed=3, steps=STEPS)
    image = graph_image(Executor().run(graph), ids["preview"])
    absent, = reference(pipe, "Euler", 3, prompt="a red circle", negative_prompt=None, guidance_scale=7.5)
    encoded_empty, = reference(pipe, "Euler", 3, prompt="a red circle", negative_prompt="", guidance_scale=7.5)
    assert np.abs(image - absent).max() <= 1
    assert np.abs(image - encoded_empty).max() > 8  # the two readings really differ


def test_sdxl_batch_of_two_matches_the_pipeline(tiny_sdxl, pipe):
    graph, ids = txt2img_graph(str(tiny_sdxl), prompt="a green square", negative="dark", seed=5, steps=STEPS,
                               batch=2)
    result = Executor().run(graph)
    assert result.status == "finished", result.error
    ours = [np.asarray(image).astype(int) for image in result.outputs[ids["preview"]]["images"]]
    theirs = reference(pipe, "Euler", 5, prompt="a green square", negative_prompt="dark", guidance_scale=7.5,
                       num_images_per_prompt=2)
    assert len(ours) == 2 and all(np.abs(a - b).max() <= 1 for a, b in zip(ours, theirs, strict=True))


def test_refiner_img2img_matches_the_pipeline(tiny_sdxl_refiner, tmp_path):
    """The refiner: second encoder only, aesthetic score (6.0 / 2.5) in its time ids."""
    from diffusers import StableDiffusionXLImg2ImgPipeline

    source = Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8))
    source.save(tmp_path / "in.png")
    graph, ids = img2img_graph(str(tiny_sdxl_refiner), str(tmp_path / "in.png"), strength=0.6, prompt="a blue star",
                               negative="blurry", seed=11, steps=6)
    image = graph_image(Executor().run(graph), ids["preview"])
    refiner = StableDiffusionXLImg2ImgPipeline.from_pretrained(str(tiny_sdxl_refiner), local_files_only=True,
                                                              add_watermarker=False)
    refiner.set_progress_bar_config(disable=True)
    expected = refiner("a blue star", image=Image.open(tmp_path / "in.png"), strength=0.6, negative_prompt="blurry",
                       num_inference_steps=6, guidance_scale=7.5,
                       generator=torch.Generator("cpu").manual_seed(11)).images[0]
    assert np.abs(image - np.asarray(expected).astype(int)).max() <= 1


def test_the_family_shows_in_previews_the_trace_and_the_loaded_model(tiny_sdxl):
    from nodes.models import MODEL_CACHE

    graph, ids = txt2img_graph(str(tiny_sdxl), steps=2)
    result = Executor().run(graph)
    assert result.status == "finished", result.error
    trace = result.outputs[ids["unet"]]["trace"]
    xl = FAMILIES["sdxl_base"]
    assert trace.latent_rgb == xl.latent.latent_rgb and trace.latent_rgb_bias == xl.latent.latent_rgb_bias
    loaded = MODEL_CACHE.get(str(tiny_sdxl), "cpu", "auto")
    assert loaded.family is xl and [e.spec.pooled for e in loaded.clip.encoders] == [False, True]
    assert loaded.vae.vae.config.scaling_factor == 0.13025


def test_a_conditioning_without_the_pooled_embedding_is_refused_on_the_sampler(tiny_sd, tiny_sdxl):
    """An SD 1.x CLIP wired into an SDXL UNet denoise: a clear message on that node, not a crash."""
    graph, ids = txt2img_graph(str(tiny_sdxl), steps=2)
    sd1 = graph.add_node(graph.create_node("sd.load_model", params={"source": str(tiny_sd)}))
    graph.connect(sd1.id, "clip", ids["positive"], "clip")
    result = Executor().run(graph)
    assert result.status == "failed" and result.error.node_id == ids["unet"]
    assert "needs the pooled text embedding" in result.error.message


def test_the_cli_runs_the_bundled_workflow_on_an_sdxl_folder(tiny_sdxl, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "nodeeditor.cli", "run", str(ROOT / "resources" / "workflows" / "txt2img.json"),
         "--set", f"Load model.source={tiny_sdxl}", "--set", "Scheduler.steps=3", "--set", "Empty latent.width=32",
         "--set", "Empty latent.height=32", "--output-dir", str(tmp_path)],
        capture_output=True, text=True, cwd=ROOT, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr
    saved = sorted(tmp_path.glob("*.png"))
    assert len(saved) == 1
    with Image.open(saved[0]) as image:
        assert image.size == (32, 32)
        assert json.loads(image.text["latentgraph_workflow"])["format"] == "latentgraph"


@pytest.mark.parametrize("kind", ["base", "refiner"])
def test_an_sgm_single_file_gives_the_folders_image(tiny_sdxl, tiny_sdxl_refiner, tmp_path, kind):
    """The single-file form users download (SGM keys: conditioner.embedders.*), written from the
    folder's weights and loaded back through Load model. Tiny dims match no published family, so
    'config' names the family's configs (the tiny folder) as a user would for an unusual model."""
    from safetensors.torch import save_file

    from nodes.ldm_export import sdxl_folder_to_sgm

    folder = tiny_sdxl if kind == "base" else tiny_sdxl_refiner
    file = tmp_path / f"tiny_sdxl_{kind}.safetensors"
    save_file(sdxl_folder_to_sgm(folder), str(file))
    prefixes = {key.split(".model.")[0].split(".transformer.")[0] for key in sdxl_folder_to_sgm(folder)
                if key.startswith("conditioner.")}
    assert prefixes == ({"conditioner.embedders.0", "conditioner.embedders.1"} if kind == "base"
                        else {"conditioner.embedders.0"})
    images = []
    for source, config in ((str(folder), ""), (str(file), str(folder))):
        if kind == "base":
            graph, ids = txt2img_graph(source, prompt="a blue star", negative="blurry", seed=7, steps=4)
        else:
            Image.new("RGB", (32, 32), (200, 40, 90)).save(tmp_path / "in.png")
            graph, ids = img2img_graph(source, str(tmp_path / "in.png"), prompt="a blue star", seed=7, steps=4)
        graph.set_param(ids["load"], "config", config)
        images.append(graph_image(Executor().run(graph), ids["preview"]))
    assert np.abs(images[0] - images[1]).max() == 0
