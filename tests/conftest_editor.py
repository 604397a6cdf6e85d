"""Helpers for the editor tests: small test node types, a window fixture, event pumping.

Import explicitly: ``from conftest_editor import *`` (fixtures ``registry``, ``window``).
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from graphs import NodeType, Param, Socket, SocketType, base_registry  # noqa: E402
from graphs import workflow as wf  # noqa: E402


def _const(ctx, value):
    return {"out": value}


def _add(ctx, a, b):
    return {"sum": a + b}


def _sleep(ctx, x=0, seconds=1.0):
    ctx.status(f"sleeping for {seconds:g} s")
    end = time.monotonic() + seconds
    step = 0
    while time.monotonic() < end:
        ctx.check_cancel()
        time.sleep(0.01)
        step += 1
        ctx.progress(min(step, 100), 100)
    return {"out": x}


def _fail(ctx, x=0, message="boom"):
    raise RuntimeError(message)


def _image(ctx, value=0, color="red", steps=3):
    for step in range(steps):
        ctx.check_cancel()
        ctx.preview(Image.new("RGB", (32, 32), (step * 40, 0, 0)), step)
        ctx.progress(step + 1, steps)
    image = Image.new("RGB", (64, 48), color)
    return {"image": image}


def _show(ctx, image):
    ctx.show_images([image])
    return {}


def _text(ctx, text="", title="", mode="a", flag=False, path="", scale=1.0, seed=0,
          control="fixed"):
    return {"out": f"{title}:{text}"}


def _seed_after(params):
    if params.get("control") == "increment":
        return {"seed": params["seed"] + 1}
    return {}


def make_registry():
    reg = base_registry()
    reg.sockets.register(SocketType("IMAGE", "#64b5f6"))
    nodes = reg.nodes
    nodes.register(NodeType("test.const", "Const", "test/math", _const,
                            outputs=(Socket("out", "INT"),),
                            params=(Param("value", "int", 1, min=-1000, max=1000),)))
    nodes.register(NodeType("test.add", "Add", "test/math", _add,
                            inputs=(Socket("a", "INT"),), outputs=(Socket("sum", "INT"),),
                            params=(Param("b", "int", 0),)))
    nodes.register(NodeType("test.sleep", "Sleep", "test/util", _sleep,
                            inputs=(Socket("x", "INT", optional=True),),
                            outputs=(Socket("out", "INT"),),
                            params=(Param("seconds", "float", 1.0, min=0.0, max=60.0, step=0.1,
                                          linkable=False),)))
    nodes.register(NodeType("test.fail", "Fail", "test/util", _fail,
                            inputs=(Socket("x", "INT", optional=True),),
                            outputs=(Socket("out", "INT"),),
                            params=(Param("message", "string", "boom"),)))
    nodes.register(NodeType("test.image", "Make image", "test/image", _image,
                            inputs=(Socket("value", "INT", optional=True),),
                            outputs=(Socket("image", "IMAGE"),),
                            params=(Param("color", "choice", "red", choices=("red", "green", "blue"),
                                          linkable=False),
                                    Param("steps", "int", 3, min=1, max=50, linkable=False))))
    nodes.register(NodeType("test.show", "Show image", "test/image", _show,
                            inputs=(Socket("image", "IMAGE"),), output_node=True))
    nodes.register(NodeType("test.text", "Everything", "test/widgets", _text,
                            outputs=(Socket("out", "STRING"),),
                            params=(Param("text", "text", "a prompt"),
                                    Param("title", "string", "t"),
                                    Param("mode", "choice", "a", choices=("a", "b")),
                                    Param("flag", "bool", False),
                                    Param("path", "path", ""),
                                    Param("scale", "float", 1.0, min=0.0, max=10.0, step=0.5, slider=True),
                                    Param("seed", "seed", 0, min=0),
                                    Param("control", "choice", "fixed",
                                          choices=("fixed", "increment", "randomize"), linkable=False,
                                          drives="seed")),
                            after_run=_seed_after))
    return reg


def build_chain(graph, n=3):
    """const -> add -> ... ; returns node ids."""
    ids = []
    prev = graph.add_node(graph.create_node("test.const", (0, 0))).id
    ids.append(prev)
    for i in range(1, n):
        node = graph.add_node(graph.create_node("test.add", (300 * i, 0)))
        graph.connect(prev, "out" if i == 1 else "sum", node.id, "a")
        prev = node.id
        ids.append(prev)
    return ids


def image_workflow(registry, seconds=None):
    """const -> make image -> show image (as a saved file's text)."""
    from graphs import Graph
    g = Graph(registry)
    c = g.add_node(g.create_node("test.const", (0, 0), node_id="c0nst"))
    im = g.add_node(g.create_node("test.image", (300, 0), node_id="1mage"))
    sh = g.add_node(g.create_node("test.show", (600, 0), node_id="sh0w"))
    g.connect(c.id, "out", im.id, "value")
    g.connect(im.id, "image", sh.id, "image")
    return g


@pytest.fixture
def registry():
    return make_registry()


def open_window(qtbot, tmp_path, registry):
    """A shown MainWindow whose dialogs answer without blocking: errors are collected in
    ``win.errors``, unsaved changes are discarded, recovery is accepted."""
    from PySide6.QtCore import QSettings, QStandardPaths
    QStandardPaths.setTestModeEnabled(True)
    from nodeeditor.app import MainWindow
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    win = MainWindow(registry=registry, output_dir=str(tmp_path / "out"), settings=settings,
                     recovery_path=str(tmp_path / "recovery" / "recovery.json"))
    win.errors = []
    win.document.show_error = lambda title, text: win.errors.append(text)
    win.document.ask_unsaved = lambda: "discard"
    win.document.ask_recover = lambda: True
    qtbot.addWidget(win)
    win.resize(1300, 800)
    win.show()
    qtbot.waitExposed(win)
    return win


@pytest.fixture
def window(qtbot, tmp_path, registry):
    win = open_window(qtbot, tmp_path, registry)
    yield win
    win.worker.shutdown()


def dumps(graph) -> str:
    return wf.dumps(graph)


def wait_run(qtbot, win, timeout=60_000):
    qtbot.waitUntil(lambda: not win.worker.busy and not win.runs.running, timeout=timeout)
