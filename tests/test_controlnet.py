"""ControlNet: the graph's images equal diffusers' ControlNet pipelines (CPU, fp32, tiny random
models), for one and two ControlNets and with control_guidance_start/end; loading refuses what
does not fit."""

import numpy as np
import pytest
import torch
from PIL import Image

import nodes  # noqa: F401
from graphs import Executor
from nodes.recipes import add_controlnet, txt2img_graph
from nodes.tiny_models import make_tiny_controlnet

STEPS = 5
PROMPT, NEGATIVE = "a blue star", "blurry"


@pytest.fixture(scope="module")
def controlnets(tiny_sd, tmp_path_factory):
    folder = tmp_path_factory.mktemp("controlnets")
    return [make_tiny_controlnet(folder / f"net{i}", tiny_sd, seed=i) for i in range(2)]


@pytest.fixture(scope="module")
def hints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hints")
    rng = np.random.default_rng(3)
    paths = []
    for i in range(2):
        path = folder / f"hint{i}.png"
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def graph_image(result, preview_id):
    assert result.status == "finished", result.error and result.error.traceback
    return np.asarray(result.outputs[preview_id]["images"][0]).astype(int)


def reference(pipeline_cls, folder, controlnet, images, seed=7, size=32, **call):
    from diffusers import ControlNetModel, EulerDiscreteScheduler

    nets = [ControlNetModel.from_pretrained(str(path), local_files_only=True) for path in controlnet]
    pipe = pipeline_cls.from_pretrained(str(folder), controlnet=nets[0] if len(nets) == 1 else nets,
                                        local_files_only=True, **({"safety_checker": None,
                                                                    "requires_safety_checker": False}
                                                                   if "XL" not in pipeline_cls.__name__ else {}))
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)  # the graph's "Euler"
    pipe.set_progress_bar_config(disable=True)
    image = [Image.open(p).convert("RGB") for p in images]
    out = pipe(PROMPT, negative_prompt=NEGATIVE, image=image[0] if len(image) == 1 else image, height=size, width=size,
               num_inference_steps=STEPS, guidance_scale=6.5, generator=torch.Generator("cpu").manual_seed(seed),
               **call).images[0]
    return np.asarray(out).astype(int)


def run_graph(folder, nets, images, strengths, starts=(0.0, 0.0), ends=(1.0, 1.0), seed=7):
    g, ids = txt2img_graph(str(folder), prompt=PROMPT, negative=NEGATIVE, seed=seed, steps=STEPS, cfg=6.5)
    for i, (net, image) in enumerate(zip(nets, images)):
        add_controlnet(g, ids, str(net), str(image), strengths[i], starts[i], ends[i], key=f"control{i}")
    return graph_image(Executor().run(g), ids["preview"]), g, ids


def test_one_controlnet_matches_the_controlnet_pipeline(tiny_sd, controlnets, hints):
    from diffusers import StableDiffusionControlNetPipeline

    image, _, _ = run_graph(tiny_sd, controlnets[:1], hints[:1], [0.8])
    expected = reference(StableDiffusionControlNetPipeline, tiny_sd, controlnets[:1], hints[:1],
                         controlnet_conditioning_scale=0.8)
    assert np.abs(image - expected).max() <= 1
    plain, _ = txt2img_graph(str(tiny_sd), prompt=PROMPT, negative=NEGATIVE, seed=7, steps=STEPS, cfg=6.5)
    without = graph_image(Executor().run(plain), _["preview"])
    assert np.abs(image - without).mean() > 2  # the ControlNet steers the image


def test_two_controlnets_with_guidance_windows_match_multi_controlnet(tiny_sd, controlnets, hints):
    from diffusers import StableDiffusionControlNetPipeline

    image, _, _ = run_graph(tiny_sd, controlnets, hints, [1.0, 0.6], starts=(0.0, 0.2), ends=(0.6, 1.0))
    expected = reference(StableDiffusionControlNetPipeline, tiny_sd, controlnets, hints,
                         controlnet_conditioning_scale=[1.0, 0.6], control_guidance_start=[0.0, 0.2],
                         control_guidance_end=[0.6, 1.0])
    assert np.abs(image - expected).max() <= 1
    only_first, _, _ = run_graph(tiny_sd, controlnets[:1], hints[:1], [1.0], ends=(0.6,))
    assert np.abs(image - only_first).mean() > 1  # the second one counts


def test_sdxl_controlnet_matches_the_sdxl_controlnet_pipeline(tiny_sdxl, hints, tmp_path):
    from diffusers import StableDiffusionXLControlNetPipeline

    net = make_tiny_controlnet(tmp_path / "xl_net", tiny_sdxl, seed=5)
    image, _, _ = run_graph(tiny_sdxl, [net], hints[:1], [0.9], starts=(0.2,), ends=(0.8,))
    expected = reference(StableDiffusionXLControlNetPipeline, tiny_sdxl, [net], hints[:1],
                         controlnet_conditioning_scale=0.9, control_guidance_start=0.2, control_guidance_end=0.8)
    assert np.abs(image - expected).max() <= 1


def test_a_hint_of_another_size_is_resized_with_a_note(tiny_sd, controlnets, tmp_path):
    big = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 40, 3), dtype=np.uint8)).save(big)
    g, ids = txt2img_graph(str(tiny_sd), prompt=PROMPT, negative=NEGATIVE, seed=1, steps=2, cfg=6.5)
    add_controlnet(g, ids, str(controlnets[0]), str(big))
    result = Executor().run(g)
    assert result.status == "finished", result.error and result.error.traceback
    assert any("resized to the image's 32x32" in w for w in result.warnings.get(ids["unet"], []))


def test_a_controlnet_of_another_family_is_refused_naming_both(tiny_sd, tiny_sdxl, hints, tmp_path):
    xl_net = make_tiny_controlnet(tmp_path / "xl_net", tiny_sdxl)
    g, ids = txt2img_graph(str(tiny_sd), prompt=PROMPT, steps=2)
    add_controlnet(g, ids, str(xl_net), str(hints[0]))
    result = Executor().run(g)
    assert result.status == "failed"
    assert result.error.node_id == ids["control_net"]
    assert "the model is SD 1.x" in result.error.message and "cross_attention_dim" in result.error.message


def test_load_controlnet_refuses_files_that_are_not_controlnets(tiny_sd, tmp_path):
    from safetensors.torch import save_file

    lora = tmp_path / "style.safetensors"
    save_file({"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": torch.zeros(4, 8)}, str(lora))
    pickle = tmp_path / "net.pth"
    pickle.write_bytes(b"not really")
    missing = tmp_path / "nothing.safetensors"
    for source, words in ((lora, "not a ControlNet: it has no hint encoder (it looks like a LoRA)"),
                          (pickle, "must be .safetensors"), (missing, "ControlNet not found"), ("", "no ControlNet")):
        g, ids = txt2img_graph(str(tiny_sd), steps=1)
        add_controlnet(g, ids, str(source), "unused.png")
        result = Executor().run(g, targets=[ids["control_net"]])
        assert result.status == "failed" and words in result.error.message, (source, result.error.message)


def test_a_single_file_controlnet_of_an_unknown_width_says_which_widths_it_reads(controlnets, tmp_path):
    from safetensors.torch import load_file, save_file

    file = tmp_path / "tiny_control.safetensors"
    save_file(load_file(str(controlnets[0] / "diffusion_pytorch_model.safetensors")), str(file))
    g, ids = txt2img_graph("bundled", steps=1)
    ids["net"] = g.add_node(g.create_node("sd.load_controlnet", params={"source": str(file)})).id
    result = Executor().run(g, targets=[ids["net"]])
    assert result.status == "failed"
    assert "cross-attention width [16]" in result.error.message and "SDXL (2048)" in result.error.message
