"""The accelerated paths: host-side previews, and CUDA-graph replay of the UNet and text encoder.

The CUDA tests run where a GPU is present (the lent device machine); the CPU ones everywhere.
"""

import numpy as np
import pytest
import torch
from PIL import Image

from graphs import Executor
from graphs.events import Preview
from nodes.accelerators import REGIONAL, REGIONAL_BLOCKS, graph_text_encoder, graph_unet
from nodes.models import MODEL_CACHE
from nodes.previews import latent_to_pil
from nodes.recipes import txt2img_graph

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def run_ok(graph, **settings):
    executor = Executor()
    previews = []
    executor.events.on(Preview, lambda e: previews.append((e.step, e.image)))
    result = executor.run(graph, settings=settings)
    assert result.status == "finished", result.error and result.error.traceback
    return result, previews


@pytest.mark.parametrize("keep_trace", [True, False])
def test_previews_are_the_x0_of_their_steps(tiny_sd, keep_trace):
    graph, ids = txt2img_graph(str(tiny_sd), steps=5)
    graph.set_param(ids["unet"], "preview_every", 2)
    result, previews = run_ok(graph, keep_trace=keep_trace)
    assert [step for step, _ in previews] == [0, 2, 4]  # every 2nd step and the last
    reference_graph, reference_ids = txt2img_graph(str(tiny_sd), steps=5)
    reference, _ = run_ok(reference_graph)
    trace = reference.outputs[reference_ids["unet"]]["trace"]
    for step, image in previews:
        expected = latent_to_pil(trace.x0[step][0], trace.latent_rgb, trace.latent_rgb_bias)
        small = image.resize(expected.size, Image.NEAREST)
        assert np.array_equal(np.asarray(small), np.asarray(expected)), step
    if not keep_trace:
        assert result.outputs[ids["unet"]]["trace"].num_steps == 0


def test_cuda_graph_mode_on_cpu_is_plain_eager(tiny_sd):
    images = {}
    for mode in ("off", "cuda_graphs"):
        graph, ids = txt2img_graph(str(tiny_sd), steps=3)
        graph.set_param(ids["load"], "device", "cpu")
        graph.set_param(ids["load"], "compile", mode)
        result, _ = run_ok(graph)
        images[mode] = np.asarray(result.outputs[ids["preview"]]["images"][0])
        loaded = MODEL_CACHE.get(str(tiny_sd), "cpu", "auto", compile=mode)
        assert loaded.unet.graphed is None and loaded.clip.encoders[0].graphed is None
    assert np.array_equal(images["off"], images["cuda_graphs"])


def test_a_failed_cuda_graph_capture_is_reported_on_the_nodes_that_ran_without(tiny_sd):
    # A capture that failed on a GPU leaves the callable running its eager function with the
    # reason kept; on the CPU the same state is set by hand to see what the user is told.
    loaded = MODEL_CACHE.get(str(tiny_sd), "cpu", "auto", compile="cuda_graphs")
    loaded.unet.graphed = graph_unet(loaded.unet.unet)
    loaded.clip.encoders[0].graphed = graph_text_encoder(loaded.clip.text_encoder)
    loaded.unet.graphed.disabled_reason = "RuntimeError: operation not permitted when stream is capturing"
    loaded.clip.encoders[0].graphed.disabled_reason = "RuntimeError: out of graph pool"
    try:
        graph, ids = txt2img_graph(str(tiny_sd), steps=2)
        graph.set_param(ids["load"], "device", "cpu")
        result, _ = run_ok(graph)
    finally:
        MODEL_CACHE.clear()  # no other test may get these models
    warnings = {node: " ".join(texts) for node, texts in result.warnings.items()}
    assert "CUDA graph capture of the UNet failed" in warnings[ids["unet"]]
    assert "stream is capturing" in warnings[ids["unet"]]
    for encode in (ids["positive"], ids["negative"]):
        assert "text encoder failed" in warnings[encode] and "out of graph pool" in warnings[encode]


def _regional_image(tiny_sd, device: str):
    """The image in compile mode "off" and in regional compile mode, and the regional model."""
    images = {}
    for mode in ("off", REGIONAL.id):
        graph, ids = txt2img_graph(str(tiny_sd), steps=3)
        graph.set_param(ids["load"], "device", device)
        graph.set_param(ids["load"], "dtype", "fp32")
        graph.set_param(ids["load"], "compile", mode)
        result, _ = run_ok(graph)
        images[mode] = np.asarray(result.outputs[ids["preview"]]["images"][0]).astype(int)
    return images, MODEL_CACHE.get(str(tiny_sd), device, "fp32", compile=REGIONAL.id)


def test_regional_compile_compiles_every_repeated_block_and_keeps_the_image(tiny_sd):
    from torch._dynamo.utils import counters

    graphs_before = counters["stats"]["unique_graphs"]
    images, loaded = _regional_image(tiny_sd, "cpu")
    assert np.abs(images["off"] - images[REGIONAL.id]).max() <= 2
    blocks = [m for m in loaded.unet.unet.modules() if type(m).__name__ in REGIONAL_BLOCKS]
    assert {type(m).__name__ for m in blocks} == set(REGIONAL_BLOCKS)
    assert all(m._compiled_call_impl is not None for m in blocks)
    assert counters["stats"]["unique_graphs"] > graphs_before  # the blocks ran compiled
    assert loaded.unet.graphed is None  # no CUDA graphs on the CPU


def _tiny_cuda_models(tiny_sd):
    loaded = MODEL_CACHE.get(str(tiny_sd), "cuda", "fp32")
    return loaded.unet.unet, loaded.clip.text_encoder


@needs_cuda
def test_graphed_unet_matches_eager_and_recaptures_for_new_shapes(tiny_sd):
    unet, _ = _tiny_cuda_models(tiny_sd)
    graphed = graph_unet(unet)
    generator = torch.Generator("cuda").manual_seed(0)
    with torch.inference_mode():
        kept = None
        for batch, size in ((2, 8), (2, 8), (1, 16), (2, 8)):
            sample = torch.randn(batch, 4, size, size, device="cuda", generator=generator)
            embeds = torch.randn(batch, 12, 16, device="cuda", generator=generator)
            timestep = torch.tensor(float(torch.randint(0, 1000, (1,)).item()), device="cuda")
            expected = unet(sample, timestep, encoder_hidden_states=embeds, return_dict=False)[0]
            out = graphed(sample, timestep, embeds)
            assert graphed.disabled_reason is None
            torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)
            if kept is None:
                kept, kept_value = out, out.clone()
    assert graphed.captures == 2  # one graph per shape, replayed for the repeats
    assert torch.equal(kept, kept_value)  # outputs are the caller's, not the graph's buffers


@needs_cuda
def test_graphed_text_encoder_matches_eager(tiny_sd):
    _, encoder = _tiny_cuda_models(tiny_sd)
    graphed = graph_text_encoder(encoder)
    with torch.inference_mode():
        for seed in (0, 1):
            ids = torch.randint(2, 20, (1, 12), device="cuda",
                                generator=torch.Generator("cuda").manual_seed(seed))
            torch.testing.assert_close(graphed(ids)[0], encoder(ids)[0], rtol=1e-4, atol=1e-5)
    assert graphed.captures == 1 and graphed.disabled_reason is None


@needs_cuda
def test_cuda_graph_mode_gives_the_eager_image(tiny_sd):
    images = {}
    for name in ("off", "cuda_graphs"):
        graph, ids = txt2img_graph(str(tiny_sd), steps=4)
        graph.set_param(ids["load"], "device", "cuda")
        graph.set_param(ids["load"], "dtype", "fp32")
        graph.set_param(ids["load"], "compile", name)
        result, _ = run_ok(graph)
        images[name] = np.asarray(result.outputs[ids["preview"]]["images"][0]).astype(int)
    assert np.abs(images["off"] - images["cuda_graphs"]).max() <= 1
    loaded = MODEL_CACHE.get(str(tiny_sd), "cuda", "fp32", compile="cuda_graphs")
    for graphed in (loaded.unet.graphed, loaded.clip.encoders[0].graphed):
        assert graphed.captures >= 1 and graphed.disabled_reason is None


@needs_cuda
@pytest.mark.parametrize("mode", ["off", "cuda_graphs"])
@pytest.mark.parametrize("name", ["Euler", "Euler a"])
def test_cuda_graph_image_matches_the_cuda_pipeline(tiny_sd, mode, name):
    """On the GPU too, eager or replayed from CUDA graphs, the graph is diffusers' pipeline (Euler
    a's step noise included, drawn from the seed's CPU generator)."""
    from diffusers import StableDiffusionPipeline

    from nodes.schedulers import build_scheduler, scheduler_spec

    graph, ids = txt2img_graph(str(tiny_sd), prompt="a blue star", seed=7, scheduler=name, steps=5)
    graph.set_param(ids["load"], "device", "cuda")
    graph.set_param(ids["load"], "dtype", "fp32")
    graph.set_param(ids["load"], "compile", mode)
    result, _ = run_ok(graph)
    image = np.asarray(result.outputs[ids["preview"]]["images"][0]).astype(int)
    pipe = StableDiffusionPipeline.from_pretrained(str(tiny_sd), safety_checker=None,
                                                   requires_safety_checker=False,
                                                   local_files_only=True).to("cuda")
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = build_scheduler(scheduler_spec(name, 5), dict(pipe.scheduler.config), 7)
    reference = pipe("a blue star", negative_prompt="", height=32, width=32, num_inference_steps=5,
                     guidance_scale=7.5, generator=torch.Generator("cpu").manual_seed(7)).images[0]
    assert np.abs(image - np.asarray(reference).astype(int)).max() <= 2


@needs_cuda
def test_regional_compile_is_captured_in_the_unet_graph(tiny_sd):
    images, loaded = _regional_image(tiny_sd, "cuda")
    assert np.abs(images["off"] - images[REGIONAL.id]).max() <= 2
    graphed = loaded.unet.graphed
    assert graphed is not None and graphed.captures >= 1 and graphed.disabled_reason is None


@needs_cuda
def test_freed_graphs_leave_no_dangling_workspace(tiny_sd):
    """A graph captured after another one was freed must not write into freed memory (cuBLAS
    caches a workspace per stream; one made during a capture belongs to that graph's pool)."""
    import gc

    unet, encoder = _tiny_cuda_models(tiny_sd)
    ids = torch.randint(2, 20, (1, 12), device="cuda", generator=torch.Generator("cuda").manual_seed(0))
    with torch.inference_mode():
        expected = encoder(ids)[0]
        first = graph_text_encoder(encoder)
        first(ids)
        del first
        gc.collect()
        torch.cuda.empty_cache()
        canaries = [torch.full((2**20,), 7.0, device="cuda") for _ in range(64)]
        second = graph_text_encoder(encoder)
        for _ in range(3):
            out = second(ids)[0]
        torch.cuda.synchronize()
    assert all(bool((c == 7.0).all()) for c in canaries)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)


@needs_cuda
def test_out_of_memory_during_capture_is_not_swallowed():
    """An OOM while capturing reaches the executor (which frees models and reports it) instead of
    silently leaving the model on the slow eager path."""
    from nodes.cuda_graphs import GraphedCallable

    def hungry(x):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 80 GiB")

    graphed = GraphedCallable(hungry, "hungry")
    with pytest.raises(torch.cuda.OutOfMemoryError):
        graphed(torch.zeros(2, device="cuda"))
    assert graphed.disabled_reason is None
