"""Knowledge about node types lives on NodeType/Param, not in code that names type ids:
what a node reports into the run's parameters, what --device overrides, which param a seed
control drives, the seed range; and a sink that writes files writes on every run."""

from __future__ import annotations

import random

import numpy as np
from PIL import Image

import nodes
from graphs import Executor, Graph, NodeType, Param, Socket, base_registry
from graphs.registry import SEED_MAX
from graphs.reports import run_parameters
from nodeeditor.cli import apply_device
from nodes.diffusion import seed_after_run
from nodes.recipes import txt2img_graph


def test_run_parameters_come_from_declarations():
    graph, ids = txt2img_graph("bundled", prompt="a blue star", negative="blurry", seed=7,
                               scheduler="DDIM", steps=9, cfg=6.5)
    found = run_parameters(graph, ids["preview"])
    assert found == {"positive_prompt": "a blue star", "negative_prompt": "blurry", "seed": 7,
                     "scheduler": "DDIM", "steps": 9, "cfg": 6.5, "denoise": 1.0,
                     "width": 32, "height": 32, "model": "bundled"}


def test_a_new_node_type_reports_what_it_declares():
    registry = base_registry()
    registry.nodes.register(NodeType("x.sampler", "Sampler", "t", lambda ctx, seed, eta, prompt=None: {"o": 1},
                                     inputs=(Socket("prompt", "STRING", optional=True, report="pos"),),
                                     outputs=(Socket("o", "INT"),),
                                     params=(Param("seed", "seed", 3, report="seed"),
                                             Param("eta", "float", 0.5, report="eta"))))
    registry.nodes.register(NodeType("x.text", "Text", "t", lambda ctx, text: {"s": text},
                                     outputs=(Socket("s", "STRING"),),
                                     params=(Param("text", "string", "hi", report="prompt"),)))
    registry.nodes.register(NodeType("x.int", "Int", "t", lambda ctx, v: {"v": v},
                                     outputs=(Socket("v", "INT"),), params=(Param("v", "int", 11, report="seed"),)))
    g = Graph(registry)
    s = g.add_node(g.create_node("x.sampler", node_id="s"))
    t = g.add_node(g.create_node("x.text", node_id="t"))
    r = g.add_node(g.create_node("graph.reroute", node_id="r"))
    g.connect(t.id, "s", r.id, "in")
    g.connect(r.id, "out", s.id, "prompt")  # through a reroute: the role passes on
    assert run_parameters(g, s.id) == {"seed": 3, "eta": 0.5, "pos_prompt": "hi"}
    i = g.add_node(g.create_node("x.int", node_id="i"))
    g.connect(i.id, "v", s.id, "seed")  # a linked param: the node feeding it reports instead
    assert run_parameters(g, s.id)["seed"] == 11


def test_device_overrides_the_params_declared_with_role_device():
    registry = base_registry()
    registry.nodes.register(NodeType("x.loader", "Loader", "t", lambda ctx, where, dev: {},
                                     params=(Param("where", "choice", "auto", choices=("auto", "cpu", "cuda"),
                                                   role="device"),
                                             Param("dev", "choice", "auto", choices=("auto", "cpu")))))
    g = Graph(registry)
    node = g.add_node(g.create_node("x.loader"))
    apply_device(g, "cpu")
    assert node.params == {"where": "cpu", "dev": "auto"}
    assert nodes.diffusion.LOAD_MODEL.param("device").role == "device"


def test_seed_randomize_draws_over_the_whole_range():
    random.seed(5)
    seeds = [seed_after_run({"seed": 0, "control": "randomize"})["seed"] for _ in range(16)]
    assert all(0 <= s <= SEED_MAX for s in seeds) and max(seeds) > 2**32
    assert seed_after_run({"seed": SEED_MAX, "control": "increment"}) == {"seed": 0}
    assert nodes.diffusion.NOISE.param("control").drives == "seed"
    assert nodes.diffusion.NOISE.param("seed").max == SEED_MAX


def test_save_image_writes_on_every_run(tmp_path):
    """A changed output folder, or a deleted file, is written again (never served from cache)."""
    Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(tmp_path / "in.png")
    g = Graph()
    load = g.add_node(g.create_node("image.load", params={"path": str(tmp_path / "in.png")}))
    save = g.add_node(g.create_node("image.save", params={"prefix": "x"}))
    g.connect(load.id, "image", save.id, "image")
    executor = Executor()
    first = executor.run(g, settings={"output_dir": str(tmp_path / "a")})
    second = executor.run(g, settings={"output_dir": str(tmp_path / "b")})
    assert first.status == second.status == "finished"
    assert load.id in second.cached and save.id in second.executed
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["x_00001.png"]
    assert [p.name for p in (tmp_path / "b").iterdir()] == ["x_00001.png"]
    (tmp_path / "b" / "x_00001.png").unlink()
    third = executor.run(g, settings={"output_dir": str(tmp_path / "b")})
    assert third.outputs[save.id]["paths"] == [str(tmp_path / "b" / "x_00001.png")]
    assert (tmp_path / "b" / "x_00001.png").is_file()
