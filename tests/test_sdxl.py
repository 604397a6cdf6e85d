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
from nodes.recipes import base_refiner_graph, img2img_graph, txt2img_graph

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


def test_clip_skip_on_sdxl_matches_the_pipelines_clip_skip(tiny_sdxl, pipe):
    """diffusers applies clip_skip to the prompt only (the negative keeps hidden_states[-2])."""
    graph, ids = txt2img_graph(str(tiny_sdxl), prompt="a blue star", negative="blurry", seed=9, steps=STEPS)
    graph.set_param(ids["positive"], "clip_skip", 1)
    image = graph_image(Executor().run(graph), ids["preview"])
    expected, = reference(pipe, "Euler", 9, prompt="a blue star", negative_prompt="blurry", guidance_scale=7.5,
                          clip_skip=1)
    unskipped, = reference(pipe, "Euler", 9, prompt="a blue star", negative_prompt="blurry", guidance_scale=7.5)
    assert np.abs(image - expected).max() <= 1 and np.abs(image - unskipped).max() > 8


def test_clip_skip_on_sd1_is_the_documented_layer_through_the_final_norm(tiny_sd):
    """SD 1.x: hidden_states[-(clip_skip + 1)] through the final layer norm (StableDiffusionPipeline
    .encode_prompt; its own clip_skip path reaches for text_model, which transformers >= 5.6 removed,
    so the reference embeddings are built here with transformers and handed to the pipeline)."""
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(str(tiny_sd), safety_checker=None, requires_safety_checker=False,
                                                   local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = reference_scheduler("Euler", dict(pipe.scheduler.config), 4)

    def embeds(text, skip):
        ids = pipe.tokenizer(text, padding="max_length", max_length=pipe.tokenizer.model_max_length,
                             truncation=True, return_tensors="pt").input_ids
        with torch.no_grad():
            out = pipe.text_encoder(ids, output_hidden_states=True)
            hidden = out.hidden_states[-(skip + 1)]
            norm = getattr(pipe.text_encoder, "text_model", pipe.text_encoder).final_layer_norm
            return norm(hidden) if skip else out[0]

    graph, ids = txt2img_graph(str(tiny_sd), prompt="a red circle", negative="", seed=4, steps=STEPS)
    graph.set_param(ids["positive"], "clip_skip", 1)
    image = graph_image(Executor().run(graph), ids["preview"])
    expected = pipe(prompt_embeds=embeds("a red circle", 1), negative_prompt_embeds=embeds("", 0), height=32,
                    width=32, num_inference_steps=STEPS, guidance_scale=7.5,
                    generator=torch.Generator("cpu").manual_seed(4)).images[0]
    assert np.abs(image - np.asarray(expected).astype(int)).max() <= 1
    graph.set_param(ids["positive"], "clip_skip", 2)  # the tiny encoder has 2 layers
    result = Executor().run(graph)
    assert result.status == "failed" and "only 2 layers" in result.error.message


def test_the_size_conditioning_node_gives_the_pipelines_micro_conditioning(tiny_sdxl, pipe):
    graph, ids = txt2img_graph(str(tiny_sdxl), prompt="a blue star", negative="blurry", seed=2, steps=STEPS)
    cond = graph.add_node(graph.create_node("sd.sdxl_conditioning", params={
        "original_width": 48, "original_height": 64, "crop_left": 8, "crop_top": 16,
        "target_width": 32, "target_height": 32})).id
    graph.connect(ids["positive"], "conditioning", cond, "conditioning")
    graph.connect(cond, "conditioning", ids["unet"], "positive")
    image = graph_image(Executor().run(graph), ids["preview"])
    expected, = reference(pipe, "Euler", 2, prompt="a blue star", negative_prompt="blurry", guidance_scale=7.5,
                          original_size=(64, 48), crops_coords_top_left=(16, 8), target_size=(32, 32))
    default, = reference(pipe, "Euler", 2, prompt="a blue star", negative_prompt="blurry", guidance_scale=7.5)
    # the tiny model's time embedding moves pixels by a few levels: beyond the exactness tolerance
    assert np.abs(image - expected).max() <= 1 and np.abs(image - default).max() > 2


@pytest.mark.parametrize("name", ["Euler", "Euler a"])
def test_base_then_refiner_matches_the_pipelines_denoising_end_and_start(tiny_sdxl, tiny_sdxl_refiner, pipe, name):
    from diffusers import StableDiffusionXLImg2ImgPipeline

    steps, fraction = 10, 0.75
    refiner = StableDiffusionXLImg2ImgPipeline.from_pretrained(str(tiny_sdxl_refiner), local_files_only=True,
                                                              add_watermarker=False)
    refiner.set_progress_bar_config(disable=True)
    refiner.scheduler = reference_scheduler(name, dict(refiner.scheduler.config), 6)
    pipe.scheduler = reference_scheduler(name, pipe.base_scheduler_config, 6)
    latents = pipe("a blue star", negative_prompt="blurry", height=32, width=32, num_inference_steps=steps,
                   denoising_end=fraction, output_type="latent", guidance_scale=7.5,
                   generator=torch.Generator("cpu").manual_seed(6)).images
    expected = refiner("a blue star", image=latents, negative_prompt="blurry", num_inference_steps=steps,
                       denoising_start=fraction, guidance_scale=7.5,
                       generator=torch.Generator("cpu").manual_seed(6)).images[0]
    # The step the pipelines split at: the timesteps at or above the documented cutoff.
    pipe.scheduler.set_timesteps(steps)
    cutoff = round(pipe.scheduler.config.num_train_timesteps * (1 - fraction))
    split = int((pipe.scheduler.timesteps >= cutoff).sum())
    assert 0 < split < steps
    graph, ids = base_refiner_graph(str(tiny_sdxl), str(tiny_sdxl_refiner), prompt="a blue star", negative="blurry",
                                    seed=6, scheduler=name, steps=steps, split=split, cfg=7.5, size=32)
    image = graph_image(Executor().run(graph), ids["preview"])
    assert np.abs(image - np.asarray(expected).astype(int)).max() <= 1


@pytest.mark.parametrize("name", ["sdxl_txt2img", "sdxl_base_refiner"])
def test_the_bundled_sdxl_workflows_validate_and_run_once_their_checkpoints_are_set(
        tiny_sdxl, tiny_sdxl_refiner, tmp_path, name):
    path = ROOT / "resources" / "workflows" / f"{name}.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "nodeeditor.cli", *args], capture_output=True, text=True,
                              cwd=ROOT, timeout=600, env=env)

    assert cli("validate", str(path)).returncode == 0
    sets = ["--set", "Empty latent.width=32", "--set", "Empty latent.height=32", "--set", "Scheduler.steps=4"]
    if name == "sdxl_txt2img":
        sets += ["--set", f"SDXL base (set source).source={tiny_sdxl}"]
    else:
        sets += ["--set", f"SDXL base (set source).source={tiny_sdxl}",
                 "--set", f"SDXL refiner (set source).source={tiny_sdxl_refiner}",
                 "--set", "Base denoise.end_step=3", "--set", "Refiner denoise.start_step=3"]
    proc = cli("run", str(path), *sets, "--output-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert len(list(tmp_path.glob("*.png"))) == 1
    unset = cli("run", str(path), "--output-dir", str(tmp_path / "unset"))
    assert unset.returncode != 0 and "sd_xl_base_1.0.safetensors" in unset.stderr  # says which file is missing


@pytest.mark.parametrize("form", ["folder", "single file"])
def test_load_vae_gives_the_pipeline_with_that_vae(tiny_sdxl, pipe, tmp_path, form):
    """Another VAE (different weights, same architecture), loaded apart from the checkpoint and
    used for decoding: the image of StableDiffusionXLPipeline given that VAE. A single file is
    read into the architecture of the checkpoint's own VAE."""
    from diffusers import AutoencoderKL
    from safetensors.torch import save_file

    from nodes.ldm_export import vae_to_ldm

    torch.manual_seed(123)
    other = AutoencoderKL.from_config(pipe.vae.config)
    other.save_pretrained(str(tmp_path / "vae"), safe_serialization=True)
    source = tmp_path / "vae"
    if form == "single file":  # original layout, no prefix: how sdxl_vae.safetensors is shipped
        state = {k.removeprefix("first_stage_model."): v.contiguous()
                 for k, v in vae_to_ldm(other.state_dict(), len(other.config.block_out_channels)).items()}
        source = tmp_path / "sdxl_vae.safetensors"
        save_file(state, str(source))
    graph, ids = txt2img_graph(str(tiny_sdxl), prompt="a blue star", negative="blurry", seed=8, steps=STEPS)
    vae = graph.add_node(graph.create_node("sd.load_vae", params={"source": str(source)})).id
    graph.connect(ids["load"], "model", vae, "model")
    graph.connect(vae, "vae", ids["decode"], "vae")
    graph.connect(vae, "vae", ids["empty"], "vae")
    image = graph_image(Executor().run(graph), ids["preview"])
    from diffusers import StableDiffusionXLPipeline

    with_vae = StableDiffusionXLPipeline.from_pretrained(str(tiny_sdxl), vae=other, local_files_only=True,
                                                         add_watermarker=False)
    with_vae.set_progress_bar_config(disable=True)
    with_vae.scheduler = reference_scheduler("Euler", pipe.base_scheduler_config, 8)
    expected = with_vae("a blue star", negative_prompt="blurry", height=32, width=32, num_inference_steps=STEPS,
                        guidance_scale=7.5, generator=torch.Generator("cpu").manual_seed(8)).images[0]
    own, = reference(pipe, "Euler", 8, prompt="a blue star", negative_prompt="blurry", guidance_scale=7.5)
    assert np.abs(image - np.asarray(expected).astype(int)).max() <= 1
    assert np.abs(image - own).max() > 8  # the checkpoint's own VAE would not give it


def test_load_vae_refuses_a_whole_checkpoint_and_a_vae_of_another_shape(tiny_sdxl, tiny_sd, tmp_path):
    from safetensors.torch import save_file

    from nodes.ldm_export import folder_to_ldm, vae_to_ldm

    whole = tmp_path / "whole.safetensors"
    save_file(folder_to_ldm(tiny_sd), str(whole))
    other_shape = tmp_path / "small_vae.safetensors"  # SD tiny VAE: 8/16 channels, not SDXL tiny's
    from diffusers import AutoencoderKL

    small = AutoencoderKL(block_out_channels=(4, 8), norm_num_groups=4, layers_per_block=1,
                          down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2)
    save_file({k.removeprefix("first_stage_model."): v.contiguous() for k, v in vae_to_ldm(small.state_dict(), 2).items()},
              str(other_shape))
    import shutil

    sd_scaled = tmp_path / "sd1_scaled_vae"  # the SDXL VAE's shapes, an SD 1.x VAE's latent scaling
    shutil.copytree(tiny_sdxl / "vae", sd_scaled)
    config = json.loads((sd_scaled / "config.json").read_text())
    assert config["scaling_factor"] != 0.18215
    (sd_scaled / "config.json").write_text(json.dumps({**config, "scaling_factor": 0.18215}))
    for source, message in ((whole, "looks like a whole checkpoint"), (other_shape, "does not fit the model's"),
                            (tmp_path / "nope.safetensors", "VAE not found"),
                            (sd_scaled, "scaling_factor is 0.18215, the SDXL base model's is 0.13025")):
        graph, ids = txt2img_graph(str(tiny_sdxl), steps=2)
        vae = graph.add_node(graph.create_node("sd.load_vae", params={"source": str(source)})).id
        graph.connect(ids["load"], "model", vae, "model")
        graph.connect(vae, "vae", ids["decode"], "vae")
        result = Executor().run(graph)
        assert result.status == "failed" and result.error.node_id == vae and message in result.error.message, \
            result.error.message


def test_empty_latent_model_default_is_the_pipelines_default_size(tiny_sdxl, tiny_sd, pipe):
    """Width and height 0 ("model default") take the size the pipeline makes when none is given."""
    graph, ids = txt2img_graph(str(tiny_sdxl), prompt="a blue star", seed=5, steps=STEPS, size=0)
    image = graph_image(Executor().run(graph), ids["preview"])
    pipe.scheduler = reference_scheduler("Euler", pipe.base_scheduler_config, 5)
    expected = np.asarray(pipe(prompt="a blue star", num_inference_steps=STEPS, guidance_scale=7.5,
                               generator=torch.Generator("cpu").manual_seed(5)).images[0]).astype(int)
    assert image.shape == expected.shape and image.shape[0] != 32
    assert np.abs(image - expected).max() <= 1
    from diffusers import UNet2DConditionModel

    sd_unet = UNet2DConditionModel.load_config(str(tiny_sd / "unet"))
    graph, ids = txt2img_graph(str(tiny_sd), steps=2, size=0)
    graph.set_param(ids["empty"], "height", 16)  # one side set, the other the model's
    sd_image = graph_image(Executor().run(graph), ids["preview"])
    scale = 2 ** (len(json.loads((tiny_sd / "vae" / "config.json").read_text())["block_out_channels"]) - 1)
    assert sd_image.shape == (16, sd_unet["sample_size"] * scale, 3)
