"""Node library behaviour through the executor: caching, errors, outputs, inspection."""

import json
import pickle

import numpy as np
from PIL import Image

import nodes
from graphs import Executor, pngmeta, workflow
from graphs.events import Preview, Progress
from nodes.models import MODEL_CACHE
from nodes.recipes import txt2img_graph


def run_ok(executor, graph, **settings):
    result = executor.run(graph, settings=settings)
    assert result.status == "finished", result.error and result.error.traceback
    return result


def test_caching_seed_and_prompt_changes(tiny_sd):
    graph, ids = txt2img_graph(str(tiny_sd), steps=3)
    executor = Executor()
    first = run_ok(executor, graph)
    assert set(first.executed) == set(ids.values())
    assert run_ok(executor, graph).executed == []

    graph.set_param(ids["noise"], "seed", 43)
    names = {v: k for k, v in ids.items()}
    assert {names[n] for n in run_ok(executor, graph).executed} == {"noise", "unet", "decode",
                                                                    "preview"}
    graph.set_param(ids["positive"], "text", "a green square")
    assert {names[n] for n in run_ok(executor, graph).executed} == {"positive", "unet", "decode",
                                                                    "preview"}


def test_model_loaded_once_for_two_loader_nodes(tiny_sd):
    graph, ids = txt2img_graph(str(tiny_sd), steps=2)
    other = graph.add_node(graph.create_node("sd.load_model", params={"source": str(tiny_sd)}))
    graph.connect(other.id, "clip", ids["negative"], "clip")
    MODEL_CACHE.clear()
    before = MODEL_CACHE.loads
    result = run_ok(Executor(), graph)
    assert MODEL_CACHE.loads == before + 1
    assert result.outputs[other.id]["clip"] is result.outputs[ids["load"]]["clip"]


def failure(graph):
    result = Executor().run(graph)
    assert result.status == "failed"
    return result.error


def test_missing_model_path_fails_on_the_loader(tmp_path):
    graph, ids = txt2img_graph(str(tmp_path / "nowhere"), steps=2)
    error = failure(graph)
    assert error.node_id == ids["load"] and "model not found" in error.message
    assert "nowhere" in error.message


def test_folder_that_is_not_a_model(tmp_path):
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "X", "unet": ["a", "b"]}))
    graph, ids = txt2img_graph(str(tmp_path), steps=2)
    error = failure(graph)
    assert error.node_id == ids["load"] and "not a Stable Diffusion model" in error.message


def test_corrupt_weights_give_a_clear_error(tiny_sd, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_sd, broken)
    weights = next((broken / "unet").glob("*.safetensors"))
    weights.write_bytes(b"not a safetensors file at all")
    graph, ids = txt2img_graph(str(broken), steps=2)
    error = failure(graph)
    assert error.node_id == ids["load"] and "cannot load" in error.message


def test_pickled_checkpoint_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    checkpoint = tmp_path / "evil.ckpt"
    checkpoint.write_bytes(pickle.dumps({"state_dict": Evil()}))
    graph, ids = txt2img_graph(str(checkpoint), steps=2)
    error = failure(graph)
    assert error.node_id == ids["load"] and "refused" in error.message
    assert not marker.exists()


def test_width_not_multiple_of_scale_names_the_problem(tiny_sd):
    graph, ids = txt2img_graph(str(tiny_sd), steps=2, size=33)
    error = failure(graph)
    assert error.node_id == ids["empty"] and "multiples" in error.message


def test_save_image_embeds_workflow_and_counts(tiny_sd, tmp_path):
    graph, ids = txt2img_graph(str(tiny_sd), steps=2)
    save = graph.add_node(graph.create_node("image.save", params={"prefix": "shot"}))
    graph.connect(ids["decode"], "image", save.id, "image")
    executor = Executor()
    result = run_ok(executor, graph, output_dir=str(tmp_path))
    (path,) = result.outputs[save.id]["paths"]
    assert path.endswith("shot_00001.png")
    restored = workflow.loads(pngmeta.workflow_text(path))
    assert workflow.dumps(restored) == workflow.dumps(graph)
    params = json.loads(pngmeta.read_text_chunks(path)[pngmeta.PARAMETERS_KEY])
    assert params["positive_prompt"] == "a red circle" and params["seed"] == 42
    assert params["steps"] == 2 and params["scheduler"] == "Euler"
    graph.set_param(ids["noise"], "seed", 5)
    (second,) = run_ok(executor, graph, output_dir=str(tmp_path)).outputs[save.id]["paths"]
    assert second.endswith("shot_00002.png")
    preview = np.asarray(result.outputs[ids["preview"]]["images"][0])
    assert np.array_equal(np.asarray(Image.open(path)), preview)


def test_trace_holds_every_step_and_fits_budget(tiny_sd):
    graph, ids = txt2img_graph(str(tiny_sd), steps=5)
    trace = run_ok(Executor(), graph).outputs[ids["unet"]]["trace"]
    assert trace.num_steps == 5 and len(trace.latents) == 6 and len(trace.timesteps) == 5
    assert all(t.device.type == "cpu" for t in trace.latents + trace.x0)
    # The last latent equals the node's output latent.
    latent = run_ok(Executor(), graph).outputs[ids["unet"]]["latent"]
    assert np.allclose(trace.latents[-1].numpy(), latent.samples.numpy())
    # 50 steps at 512x512 (4x64x64 latents): (51 latents + 50 x0) * 4 * 64 * 64 * 4 bytes.
    per_latent = trace.latents[0].element_size() * 4 * 64 * 64
    assert per_latent * (51 + 50) < 100 * 1024**2


def test_latent_inspect_views(tiny_sd):
    graph, ids = txt2img_graph(str(tiny_sd), steps=3)
    inspect = graph.add_node(graph.create_node("sd.latent_inspect"))
    graph.connect(ids["unet"], "trace", inspect.id, "trace")
    graph.connect(ids["load"], "vae", inspect.id, "vae")
    executor = Executor()
    sizes = {}
    for view in ("latent2rgb", "channel", "decoded"):
        graph.set_param(inspect.id, "view", view)
        image = run_ok(executor, graph).outputs[inspect.id]["image"]
        sizes[view] = tuple(image.shape)
    assert sizes["decoded"] == (1, 3, 32, 32)
    assert sizes["latent2rgb"][2] >= 16 and sizes["channel"] == sizes["latent2rgb"]
    graph.set_param(inspect.id, "step", 99)
    assert "out of range" in failure(graph).message


def test_render_trace_for_the_inspector(tiny_sd):
    from nodes.inspect import render_trace

    graph, ids = txt2img_graph(str(tiny_sd), steps=3)
    trace = run_ok(Executor(), graph).outputs[ids["unet"]]["trace"]
    first = render_trace(trace, 0, "latent", "latent2rgb")
    last = render_trace(trace, -1, "x0", "decoded")
    assert first.size[0] >= 16 and last.size == (32, 32)
    assert np.asarray(render_trace(trace, 1, "x0", "channel", channel=2)).std() > 0


def test_primitive_drives_a_param(tiny_sd):
    graph, ids = txt2img_graph(str(tiny_sd), steps=6)
    steps = graph.add_node(graph.create_node("value.int", params={"value": 2}))
    graph.connect(steps.id, "value", ids["scheduler"], "steps")
    result = run_ok(Executor(), graph)
    assert result.outputs[ids["unet"]]["trace"].num_steps == 2
    graph.set_param(steps.id, "value", 0)
    assert "steps" in failure(graph).message


def test_seed_control_after_run(tiny_sd):
    graph, ids = txt2img_graph(str(tiny_sd), steps=2)
    graph.set_param(ids["noise"], "control", "increment")
    assert run_ok(Executor(), graph).param_updates == {ids["noise"]: {"seed": 43}}


def test_cancel_stops_within_a_step(tiny_sd):
    graph, ids = txt2img_graph(str(tiny_sd), steps=20)
    executor = Executor()
    steps_seen = []

    def on_progress(e: Progress):
        steps_seen.append(e.step)
        if e.step == 3:
            executor.cancel()

    unsubscribe = executor.events.on(Progress, on_progress)
    result = executor.run(graph)
    assert result.status == "cancelled" and max(steps_seen) == 3
    unsubscribe()
    assert run_ok(executor, graph).outputs[ids["unet"]]["trace"].num_steps == 20


def test_previews_every_step(tiny_sd):
    graph, ids = txt2img_graph(str(tiny_sd), steps=4)
    previews = []
    executor = Executor()
    executor.events.on(Preview, lambda e: previews.append(e.image))
    run_ok(executor, graph)
    assert len(previews) == 4 and all(isinstance(p, Image.Image) for p in previews)


def test_end_step_then_start_step_chain(tiny_sd):
    """Two samplers split one schedule: the first stops early, leaving noise in the latent."""
    graph, ids = txt2img_graph(str(tiny_sd), steps=6)
    graph.set_param(ids["unet"], "end_step", 2)
    result = run_ok(Executor(), graph)
    trace = result.outputs[ids["unet"]]["trace"]
    assert trace.num_steps == 2
    full = txt2img_graph(str(tiny_sd), steps=6)
    full_trace = run_ok(Executor(), full[0]).outputs[full[1]["unet"]]["trace"]
    # The first two steps are the same as in the full run.
    assert np.allclose(trace.latents[2].numpy(), full_trace.latents[2].numpy(), atol=1e-6)
    graph.set_param(ids["unet"], "end_step", -1)
    graph.set_param(ids["unet"], "start_step", 4)
    assert run_ok(Executor(), graph).outputs[ids["unet"]]["trace"].num_steps == 2


def test_offload_needs_cuda(tiny_sd):
    graph, ids = txt2img_graph(str(tiny_sd), steps=2)
    graph.set_param(ids["load"], "device", "cpu")
    graph.set_param(ids["load"], "offload", "model")
    error = failure(graph)
    assert error.node_id == ids["load"] and "needs a CUDA device" in error.message


def test_cuda_out_of_memory_frees_models_and_next_run_works(tiny_sd):
    import torch

    from graphs import Graph, NodeType, Socket, base_registry

    registry = nodes.register(base_registry())
    state = {"fail": True}

    def hungry(ctx, model):
        if state["fail"]:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20 GiB")
        return {}

    registry.nodes.register(NodeType("test.hungry", "Hungry", "test", hungry,
                                     inputs=(Socket("model", "MODEL"),), output_node=True))
    graph = Graph(registry)
    load = graph.add_node(graph.create_node("sd.load_model", params={"source": str(tiny_sd)}))
    eat = graph.add_node(graph.create_node("test.hungry"))
    graph.connect(load.id, "model", eat.id, "model")
    executor = Executor()
    executor.release_hooks.append(nodes.release_models)
    result = executor.run(graph)
    assert result.status == "failed" and result.error.node_id == eat.id
    assert "out of memory" in result.error.message and "freed" in result.error.message
    assert len(MODEL_CACHE) == 0 and len(executor.cache) == 0
    state["fail"] = False
    assert executor.run(graph).status == "finished"


def test_trace_setting_is_part_of_the_cache_key(tiny_sd):
    graph, ids = txt2img_graph(str(tiny_sd), steps=2)
    executor = Executor()
    bare = run_ok(executor, graph, keep_trace=False)
    assert bare.outputs[ids["unet"]]["trace"].num_steps == 0
    full = run_ok(executor, graph)
    assert ids["unet"] in full.executed and full.outputs[ids["unet"]]["trace"].num_steps == 2


def test_auto_dtype_follows_the_model_folder_preference(tiny_sd, tmp_path):
    import shutil

    import torch

    folder = tmp_path / "model"
    shutil.copytree(tiny_sd, folder)
    (folder / "latentgraph.json").write_text(json.dumps({"dtype": "bf16"}))
    try:
        assert MODEL_CACHE.get(str(folder), "cpu", "auto").unet.dtype == torch.bfloat16
        assert MODEL_CACHE.get(str(folder), "cpu", "fp32").unet.dtype == torch.float32  # explicit wins
        for text in (json.dumps({"dtype": "fp128"}), "{not json", "[1]"):  # unknown or unreadable: ignored
            (folder / "latentgraph.json").write_text(text)
            MODEL_CACHE.clear()
            assert MODEL_CACHE.get(str(folder), "cpu", "auto").unet.dtype == torch.float32
    finally:
        MODEL_CACHE.clear()


def test_schedulers_are_fresh_copies_for_every_run(tiny_sd):
    """Schedulers come from a cached template (from_config is slow); each run gets its own."""
    import json

    import torch

    from nodes.schedulers import build_scheduler, scheduler_spec

    config = json.loads((tiny_sd / "scheduler" / "scheduler_config.json").read_text())
    spec = scheduler_spec("Euler", 4)
    first = build_scheduler(spec, config, 1)
    first.set_timesteps(4)
    sample = torch.zeros(1, 4, 8, 8)
    first.step(torch.ones_like(sample), first.timesteps[0], sample)
    second = build_scheduler(spec, config, 1)
    assert second is not first and second.step_index is None and len(second.timesteps) != 4
    assert build_scheduler(spec, {**config, "prediction_type": "v_prediction"}, 1).config.prediction_type \
        == "v_prediction"


def test_a_size_or_cfg_the_model_was_not_made_for_is_said_on_the_sampler(tiny_sd):
    import json

    from diffusers import UNet2DConditionModel

    sample = UNet2DConditionModel.load_config(str(tiny_sd / "unet"))["sample_size"]
    scale = 2 ** (len(json.loads((tiny_sd / "vae" / "config.json").read_text())["block_out_channels"]) - 1)
    trained = sample * scale
    graph, ids = txt2img_graph(str(tiny_sd), steps=2, size=trained * 2)  # a hires fix's 2x: fine
    assert not run_ok(Executor(), graph).warnings
    graph.set_param(ids["empty"], "width", trained * 3)
    graph.set_param(ids["unet"], "cfg", 30.0)
    warnings = run_ok(Executor(), graph).warnings[ids["unet"]]
    assert f"this model makes {trained}x{trained} images; {trained * 3}x{trained * 2} will not look right" in warnings
    assert "cfg 30 is outside the 1-15 that SD 1.x models are used at" in warnings
