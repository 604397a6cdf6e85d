"""Load LoRA: files in diffusers/peft and kohya (A1111) form, made here with peft and diffusers'
own converter, applied through the graph and compared with the diffusers pipelines'
``load_lora_weights`` + ``set_adapters``; the shared base model is never changed for anyone else."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_nodes_exactness import graph_image, reference_scheduler

import nodes  # noqa: F401
from graphs import Executor
from nodes.recipes import txt2img_graph
from nodes.tiny_loras import make_random_lora as make_lora

STEPS = 4
def reference(folder, loras, seed, name="Euler", sdxl=False, size=32, prompt="a red circle", cfg=7.5):
    """The pipeline's image with ``loras`` = [(file, unet strength, text strength)]."""
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    cls = StableDiffusionXLPipeline if sdxl else StableDiffusionPipeline
    options = {"add_watermarker": False} if sdxl else {"safety_checker": None, "requires_safety_checker": False}
    pipe = cls.from_pretrained(str(folder), local_files_only=True, **options)
    pipe.set_progress_bar_config(disable=True)
    names, weights = [], []
    for i, (file, unet_strength, text_strength) in enumerate(loras):
        pipe.load_lora_weights(str(file), adapter_name=f"lora{i}")
        names.append(f"lora{i}")
        text = {"text_encoder": text_strength}
        if sdxl:
            text["text_encoder_2"] = text_strength
        weights.append({"unet": unet_strength, **text})
    if names:
        pipe.set_adapters(names, adapter_weights=weights)
    pipe.scheduler = reference_scheduler(name, dict(pipe.scheduler.config), seed)
    negative = {} if sdxl else {"negative_prompt": ""}
    image = pipe(prompt, height=size, width=size, num_inference_steps=STEPS, guidance_scale=cfg,
                 generator=torch.Generator("cpu").manual_seed(seed), **negative).images[0]
    return np.asarray(image).astype(int)


def lora_graph(folder, loras, seed, name="Euler", prompt="a red circle"):
    """The standard chain with Load LoRA nodes between Load model and its users."""
    graph, ids = txt2img_graph(str(folder), prompt=prompt, seed=seed, scheduler=name, steps=STEPS)
    model, clip = (ids["load"], "model"), (ids["load"], "clip")
    for i, (file, unet_strength, text_strength) in enumerate(loras):
        node = graph.add_node(graph.create_node("sd.load_lora", title=f"lora{i}", params={
            "file": str(file), "strength_model": unet_strength, "strength_clip": text_strength})).id
        ids[f"lora{i}"] = node
        graph.connect(*model, node, "model")
        graph.connect(*clip, node, "clip")
        model, clip = (node, "model"), (node, "clip")
    graph.connect(*model, ids["unet"], "model")
    graph.connect(*clip, ids["positive"], "clip")
    graph.connect(*clip, ids["negative"], "clip")
    return graph, ids


def run_image(graph, ids):
    result = Executor().run(graph)
    assert result.status == "finished", result.error and result.error.message
    return graph_image(result, ids["preview"])


@pytest.fixture(scope="module")
def sd_loras(tiny_sd, tmp_path_factory):
    folder = tmp_path_factory.mktemp("loras")
    return {"diffusers": make_lora(tiny_sd, folder / "style_diffusers.safetensors", 1),
            "kohya": make_lora(tiny_sd, folder / "style_kohya.safetensors", 2, form="kohya", alpha=2.0),
            "other": make_lora(tiny_sd, folder / "detail.safetensors", 3)}


@pytest.mark.parametrize("form", ["diffusers", "kohya"])
@pytest.mark.parametrize("name", ["Euler", "DPM++ 2M Karras"])
def test_one_lora_matches_the_pipeline(tiny_sd, sd_loras, form, name):
    loras = [(sd_loras[form], 0.8, 0.6)]
    image = run_image(*lora_graph(tiny_sd, loras, 11, name))
    expected = reference(tiny_sd, loras, 11, name)
    assert np.abs(image - expected).max() <= 1
    plain = reference(tiny_sd, [], 11, name)
    assert np.abs(image - plain).max() > 8  # the LoRA really changed the image


def test_two_stacked_loras_match_the_pipeline(tiny_sd, sd_loras):
    loras = [(sd_loras["kohya"], 1.0, 0.5), (sd_loras["other"], -0.7, 1.2)]
    image = run_image(*lora_graph(tiny_sd, loras, 5))
    assert np.abs(image - reference(tiny_sd, loras, 5)).max() <= 1


def test_text_encoder_only_and_unet_only_strengths_match_the_pipeline(tiny_sd, sd_loras):
    plain = reference(tiny_sd, [], 9)
    for loras in ([(sd_loras["diffusers"], 0.0, 1.0)], [(sd_loras["diffusers"], 1.0, 0.0)]):
        image = run_image(*lora_graph(tiny_sd, loras, 9))
        assert np.abs(image - reference(tiny_sd, loras, 9)).max() <= 1
        assert np.abs(image - plain).max() > 4


def test_with_and_without_a_lora_in_one_run_and_the_base_model_after_it(tiny_sd, sd_loras):
    """Two samplers on one loaded model, one through Load LoRA, in one run: each is right. Then
    strength 0, a bypassed LoRA and a removed one give the base image bit for bit."""
    from graphs.model import Link

    graph, ids = lora_graph(tiny_sd, [(sd_loras["kohya"], 0.9, 0.9)], 13)
    plain_graph, plain_ids = txt2img_graph(str(tiny_sd), seed=13, steps=STEPS)
    base = run_image(plain_graph, plain_ids)
    # A second chain beside the LoRA one: its own encoders and sampler on the bare model.
    copy = {key: graph.add_node(graph.create_node(graph.nodes[ids[key]].type_id, title=f"{key}2",
                                                  params=dict(graph.nodes[ids[key]].params))).id
            for key in ("positive", "negative", "unet", "decode", "preview")}
    for link in list(graph.links.values()):
        src = {v: k for k, v in ids.items()}.get(link.src_node)
        dst = {v: k for k, v in ids.items()}.get(link.dst_node)
        if dst in copy:
            source = copy.get(src, link.src_node) if src in copy else (ids["load"] if src == "lora0" else link.src_node)
            graph.add_link(Link(f"{link.id}b", source, link.src_output, copy[dst], link.dst_input))
    result = Executor().run(graph)
    assert result.status == "finished", result.error and result.error.message
    with_lora, without = graph_image(result, ids["preview"]), graph_image(result, copy["preview"])
    assert np.array_equal(without, base)
    assert np.abs(with_lora - reference(tiny_sd, [(sd_loras["kohya"], 0.9, 0.9)], 13)).max() <= 1

    executor = Executor()
    assert not np.array_equal(run_with(executor, graph, ids), base)
    graph.set_param(ids["lora0"], "strength_model", 0.0)
    graph.set_param(ids["lora0"], "strength_clip", 0.0)
    assert np.array_equal(run_with(executor, graph, ids), base)
    graph.set_param(ids["lora0"], "strength_model", 0.9)
    graph.set_param(ids["lora0"], "strength_clip", 0.9)
    graph.set_flag(ids["lora0"], "bypass", True)
    assert np.array_equal(run_with(executor, graph, ids), base)


def run_with(executor, graph, ids):
    result = executor.run(graph)
    assert result.status == "finished", result.error and result.error.message
    return graph_image(result, ids["preview"])


def test_changing_a_strength_reruns_only_what_depends_on_it(tiny_sd, sd_loras):
    graph, ids = lora_graph(tiny_sd, [(sd_loras["diffusers"], 0.5, 0.5)], 3)
    executor = Executor()
    run_with(executor, graph, ids)
    graph.set_param(ids["lora0"], "strength_model", 0.7)
    result = executor.run(graph)
    assert set(result.executed) == {ids["lora0"], ids["positive"], ids["negative"], ids["unet"], ids["decode"],
                                    ids["preview"]}
    assert ids["load"] in result.cached and ids["empty"] in result.cached
    assert np.abs(graph_image(result, ids["preview"]) - reference(tiny_sd, [(sd_loras["diffusers"], 0.7, 0.5)], 3)
                  ).max() <= 1


def test_a_peft_dora_lora_matches_the_pipeline(tiny_sd, tmp_path):
    """DoRA in peft's form. diffusers 0.42 with transformers 5 loads text-encoder DoRA magnitudes under
    a key transformers does not expect, so they keep their initial values; the reference is given
    the file with those keys in the form transformers reads ("...lora_magnitude_vector.weight")."""
    from safetensors.torch import load_file, save_file

    dora = make_lora(tiny_sd, tmp_path / "dora.safetensors", 21, dora=True)
    fixed = tmp_path / "dora_keys_for_transformers.safetensors"
    save_file({(k + ".weight" if k.startswith("text_encoder") and k.endswith("lora_magnitude_vector") else k): v
               for k, v in load_file(str(dora)).items()}, str(fixed))
    image = run_image(*lora_graph(tiny_sd, [(dora, 0.8, 0.6)], 2))
    assert np.abs(image - reference(tiny_sd, [(fixed, 0.8, 0.6)], 2)).max() <= 1
    as_diffusers_reads_it = reference(tiny_sd, [(dora, 0.8, 0.6)], 2)
    assert np.abs(image - as_diffusers_reads_it).max() > 4  # the magnitudes matter


@pytest.mark.parametrize("form", ["diffusers", "kohya"])
def test_sdxl_lora_on_both_text_encoders_matches_the_pipeline(tiny_sdxl, tmp_path, form):
    lora = make_lora(tiny_sdxl, tmp_path / f"xl_{form}.safetensors", 4, form=form, sdxl=True, alpha=8.0)
    loras = [(lora, 0.7, 0.9)]
    graph, ids = lora_graph(tiny_sdxl, loras, 6)
    statuses = []
    from graphs.events import NodeStatus

    executor = Executor()
    executor.events.on(NodeStatus, lambda e: statuses.append(e.message) if e.node_id == ids["lora0"] else None)
    image = run_with(executor, graph, ids)
    assert statuses and "text encoder 2 layers" in statuses[0] and "UNet layers" in statuses[0]
    assert np.abs(image - reference(tiny_sdxl, loras, 6, sdxl=True)).max() <= 1


def failure(graph, ids, node="lora0"):
    result = Executor().run(graph)
    assert result.status == "failed" and result.error.node_id == ids[node], result.status
    return result.error.message


def test_bad_lora_files_are_refused_on_the_node_naming_what_was_found(tiny_sd, tiny_sdxl, tmp_path):
    import pickle

    from safetensors.torch import save_file

    xl = make_lora(tiny_sdxl, tmp_path / "xl.safetensors", 4, form="kohya", sdxl=True)
    loha = tmp_path / "loha.safetensors"
    save_file({"lora_unet_down_blocks_0_attentions_0_proj_in.hada_w1_a": torch.zeros(4, 8),
               "lora_unet_down_blocks_0_attentions_0_proj_in.hada_w1_b": torch.zeros(4, 8)}, str(loha))
    vae = tmp_path / "vae.safetensors"
    save_file({"encoder.conv_in.weight": torch.zeros(4, 3, 3, 3), "decoder.conv_out.weight": torch.zeros(3, 4, 3, 3)},
              str(vae))
    evil = tmp_path / "evil.ckpt"

    class Payload:
        def __reduce__(self):
            return (print, ("unpickled!",))
    evil.write_bytes(pickle.dumps({"state_dict": Payload()}))
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 100)
    cases = [(xl, "does not fit this SD 1.x model"), (xl, "looks made for SDXL models"),
             (loha, "a LoHa (LyCORIS) file"), (vae, "no LoRA layers in this file"),
             (evil, "unsafe unpickling"), (garbage, "not a readable .safetensors file"),
             (tmp_path / "missing.safetensors", "LoRA not found"), (tmp_path, "a folder")]
    for file, message in cases:
        graph, ids = lora_graph(tiny_sd, [(file, 1.0, 1.0)], 1)
        assert message in failure(graph, ids), (file.name, message)


def test_kohya_dora_scales_are_applied_as_comfyui_applies_them(tiny_sd, tmp_path):
    """kohya/LyCORIS DoRA: diffusers drops ``dora_scale``; ComfyUI rescales the merged weight to it
    over the input-axis norm and blends by strength. The reference is that formula, computed here
    from the base weights and the file's own tensors."""
    from diffusers import UNet2DConditionModel
    from diffusers.utils import convert_state_dict_to_kohya
    from safetensors.torch import save_file

    from nodes.weight_patches import patched

    base = UNet2DConditionModel.from_pretrained(str(tiny_sd / "unet"))
    paths = ["down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q", "down_blocks.0.resnets.0.conv1"]
    rank, alpha, strength = 4, 2.0, 0.7
    torch.manual_seed(3)
    peft_form, expected = {}, {}
    for path in paths:
        weight = base.get_submodule(path).weight.detach()
        down = torch.randn(rank, *weight.shape[1:]) * 0.3
        up = torch.randn(weight.shape[0], rank, *([1] * (weight.ndim - 2))) * 0.3
        peft_form[f"unet.{path}.lora_A.weight"], peft_form[f"unet.{path}.lora_B.weight"] = down, up
    kohya = convert_state_dict_to_kohya(peft_form)
    for path in paths:
        weight = base.get_submodule(path).weight.detach()
        down, up = peft_form[f"unet.{path}.lora_A.weight"], peft_form[f"unet.{path}.lora_B.weight"]
        prefix = next(k for k, v in kohya.items() if v is down)[:-len(".lora_down.weight")]
        kohya[prefix + ".alpha"] = torch.tensor(alpha)
        merged = weight + (up.flatten(1) @ down.flatten(1)).reshape(weight.shape) * (alpha / rank)
        norm = merged.transpose(0, 1).reshape(weight.shape[1], -1).norm(dim=1)
        scale = (norm * (0.8 + 0.4 * torch.rand(weight.shape[1]))).reshape(1, weight.shape[1], *([1] * (weight.ndim - 2)))
        kohya[prefix + ".dora_scale"] = scale
        norm = norm.reshape(scale.shape)
        expected[path] = weight + strength * (merged * (scale / norm) - weight)
    file = tmp_path / "kohya_dora.safetensors"
    save_file({k: v.contiguous() for k, v in kohya.items()}, str(file))
    graph, ids = lora_graph(tiny_sd, [(file, strength, 0.0)], 1)
    result = Executor().run(graph)
    assert result.status == "finished" and not result.warnings.get(ids["lora0"]), result.warnings
    model = result.outputs[ids["lora0"]]["model"]
    with patched(model.unet, model.patches):
        for path in paths:
            assert torch.allclose(model.unet.get_submodule(path).weight, expected[path], atol=1e-5), path
    with patched(model.unet):
        for path in paths:
            assert torch.equal(model.unet.get_submodule(path).weight, base.get_submodule(path).weight)
