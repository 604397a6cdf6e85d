"""A node that grows during a run (its image appears) pushes the nodes it would cover down: after
the run no node hides another, the nodes above it and the one that grew stay where they were."""

from __future__ import annotations

import itertools

from conftest_editor import registry, wait_run, window  # noqa: F401

from graphs import Graph


def test_a_growing_node_pushes_the_nodes_below_it_down(window, registry, qtbot):  # noqa: F811
    g = Graph(registry)
    above = g.add_node(g.create_node("test.const", (300, -200)))
    image = g.add_node(g.create_node("test.image", (300, 0)))
    show = g.add_node(g.create_node("test.show", (700, 0)))
    below = g.add_node(g.create_node("test.const", (320, 120)))  # just under Make image's body
    under_that = g.add_node(g.create_node("test.const", (330, 260)))
    g.connect(image.id, "image", show.id, "image")
    window.document.load_graph(g)
    items = window.scene.node_items
    assert not items[image.id].sceneBoundingRect().intersects(items[below.id].sceneBoundingRect())
    window.runs.run()
    wait_run(qtbot, window)
    assert window.runs.last_result.status == "finished"
    rects = {node_id: item.sceneBoundingRect() for node_id, item in items.items()}
    names = {above.id: "above", image.id: "image", show.id: "show", below.id: "below", under_that.id: "under"}
    overlaps = [(names[a], names[b], rects[a].getRect(), rects[b].getRect())
                for a, b in itertools.combinations(rects, 2) if rects[a].intersects(rects[b])]
    assert not overlaps
    assert window.graph.nodes[image.id].pos == (300, 0) and window.graph.nodes[above.id].pos == (300, -200)
    assert window.graph.nodes[below.id].pos[1] > 120 and window.graph.nodes[under_that.id].pos[1] > 260
    assert window.graph.nodes[below.id].pos[0] == 320  # straight down, not sideways
