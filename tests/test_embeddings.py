"""Textual inversion: A1111 and SDXL embedding files found in the embeddings folder, used as
``embedding:name`` or by their bare name, against diffusers' ``load_textual_inversion``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_nodes_exactness import graph_image, reference_scheduler

import nodes  # noqa: F401
from graphs import Executor
from nodes.recipes import txt2img_graph


def run(folder, prompt, models, seed=4, negative=""):
    graph, ids = txt2img_graph(str(folder), prompt=prompt, negative=negative, seed=seed, steps=3)
    result = Executor(settings={"models_dir": str(models)}).run(graph)
    return result, ids


def image(folder, prompt, models, seed=4):
    result, ids = run(folder, prompt, models, seed)
    assert result.status == "finished", result.error and result.error.message
    return graph_image(result, ids["preview"])


@pytest.fixture(scope="module")
def models(tiny_sd, tmp_path_factory):
    """A models folder with two embeddings for the tiny SD model: A1111 .pt and .safetensors."""
    from safetensors.torch import save_file
    from transformers import CLIPTextConfig

    width = CLIPTextConfig.from_pretrained(str(tiny_sd / "text_encoder")).hidden_size
    root = tmp_path_factory.mktemp("models")
    (root / "embeddings").mkdir()
    torch.manual_seed(0)
    torch.save({"string_to_param": {"*": torch.randn(2, width)}, "name": "style", "step": 100},
               root / "embeddings" / "style.pt")
    save_file({"emb_params": torch.randn(3, width)}, str(root / "embeddings" / "glow.safetensors"))
    return root


@pytest.mark.parametrize(("ours", "theirs", "file"), [
    ("a embedding:style star", "a <style> star", "style.pt"),
    ("a style star", "a <style> star", "style.pt"),  # A1111: the bare file name
    ("embedding:glow, red", "<glow>, red", "glow.safetensors")])
def test_an_embedding_gives_the_pipelines_image(tiny_sd, models, ours, theirs, file):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(str(tiny_sd), local_files_only=True, safety_checker=None,
                                                   requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    token = theirs.split("<")[1].split(">")[0]
    pipe.load_textual_inversion(str(models / "embeddings" / file), token=f"<{token}>")
    pipe.scheduler = reference_scheduler("Euler", dict(pipe.scheduler.config), 4)
    expected = pipe(theirs, negative_prompt="", height=32, width=32, num_inference_steps=3, guidance_scale=7.5,
                    generator=torch.Generator("cpu").manual_seed(4)).images[0]
    got = image(tiny_sd, ours, models)
    assert np.abs(got - np.asarray(expected).astype(int)).max() <= 1
    assert np.abs(got - image(tiny_sd, theirs.replace(f"<{token}>", "x"), models)).max() > 2


def test_sdxl_embeddings_reach_both_encoders_as_diffusers_loads_them(tiny_sdxl, tmp_path):
    """SDXL files carry clip_l and clip_g; diffusers' documented way loads each into its encoder.
    The hidden states are compared (the pooled output of these tiny configs is not the end token's)."""
    from diffusers import StableDiffusionXLPipeline
    from safetensors.torch import load_file, save_file

    pipe = StableDiffusionXLPipeline.from_pretrained(str(tiny_sdxl), local_files_only=True, add_watermarker=False)
    (tmp_path / "embeddings").mkdir()
    file = tmp_path / "embeddings" / "look.safetensors"
    torch.manual_seed(1)
    save_file({"clip_l": torch.randn(2, pipe.text_encoder.config.hidden_size),
               "clip_g": torch.randn(2, pipe.text_encoder_2.config.hidden_size)}, str(file))
    state = load_file(str(file))
    pipe.load_textual_inversion(state["clip_l"], token="<look>", text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer)
    pipe.load_textual_inversion(state["clip_g"], token="<look>", text_encoder=pipe.text_encoder_2,
                                tokenizer=pipe.tokenizer_2)
    expected = pipe.encode_prompt("a <look> star", device="cpu", do_classifier_free_guidance=False)[0]
    graph, ids = txt2img_graph(str(tiny_sdxl), prompt="a embedding:look star", steps=2)
    result = Executor(settings={"models_dir": str(tmp_path)}).run(graph, targets=[ids["positive"]])
    assert result.status == "finished", result.error and result.error.message
    got = result.outputs[ids["positive"]]["conditioning"].embeds
    assert got.shape == expected.shape and torch.allclose(got, expected, atol=1e-5)


def test_bad_embeddings_are_errors_on_text_encode(tiny_sd, models, tmp_path):
    from safetensors.torch import save_file

    result, ids = run(tiny_sd, "a embedding:nothing star", models)
    assert result.status == "failed" and result.error.node_id == ids["positive"]
    assert "embedding not found: nothing; also looked in" in result.error.message
    assert str(models / "embeddings") in result.error.message
    wide = tmp_path / "embeddings"
    wide.mkdir()
    save_file({"emb_params": torch.randn(1, 999)}, str(wide / "wide.safetensors"))
    result, ids = run(tiny_sd, "embedding:wide", tmp_path)
    assert result.status == "failed" and result.error.node_id == ids["positive"]
    assert "is 999 wide" in result.error.message and "another model family" in result.error.message


def test_an_edited_embedding_reruns_the_text_encode(tiny_sd, tmp_path):
    from safetensors.torch import save_file
    from transformers import CLIPTextConfig

    width = CLIPTextConfig.from_pretrained(str(tiny_sd / "text_encoder")).hidden_size
    (tmp_path / "embeddings").mkdir()
    file = tmp_path / "embeddings" / "mood.safetensors"
    save_file({"emb_params": torch.zeros(1, width)}, str(file))
    graph, ids = txt2img_graph(str(tiny_sd), prompt="embedding:mood", steps=2)
    executor = Executor(settings={"models_dir": str(tmp_path)})
    first = executor.run(graph, targets=[ids["positive"]]).outputs[ids["positive"]]["conditioning"].embeds
    save_file({"emb_params": torch.ones(1, width)}, str(file))
    again = executor.run(graph, targets=[ids["positive"]])
    assert ids["positive"] in again.executed
    assert not torch.equal(again.outputs[ids["positive"]]["conditioning"].embeds, first)
