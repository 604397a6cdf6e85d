"""A node that grows (a preview or an image appearing on it) pushes the nodes it would cover down,
so nothing ends up hidden under it: the nodes it now overlaps move below it, and the nodes those
land on move on in turn. The moves are layout, not edits: they go to the graph directly, not onto
the undo stack, and never move the node that grew."""

from __future__ import annotations

from PySide6.QtCore import QRectF

GAP = 24.0
MAX_ROUNDS = 64


def push_aside(scene, node_id: str, before: QRectF) -> list[str]:
    """Move the nodes that ``node_id``'s growth from ``before`` made it overlap; returns their ids.
    Each round moves every node hit by the last round's movers down by one amount, so nodes that
    were stacked below keep their order and spacing."""
    items = scene.node_items
    grown = items[node_id].sceneBoundingRect()
    if grown.height() <= before.height() and grown.width() <= before.width():
        return []
    placed = {node_id}
    movers = [grown]
    moved: list[str] = []
    for _ in range(MAX_ROUNDS):
        hits: dict[str, float] = {}  # node -> how far down it must go
        for other_id, item in items.items():
            if other_id in placed:
                continue
            rect = item.sceneBoundingRect()
            if not moved and rect.intersects(before):
                continue  # under the node before it grew: the user's own layout
            need = [m.bottom() + GAP - rect.top() for m in movers if rect.intersects(m) and rect.top() >= m.top()]
            if need:
                hits[other_id] = max(need)
        if not hits:
            break
        shift = max(hits.values())
        movers = []
        for other_id in hits:
            node = scene.graph.nodes[other_id]
            scene.graph.move_node(other_id, (node.pos[0], node.pos[1] + shift))
            movers.append(items[other_id].sceneBoundingRect())
            placed.add(other_id)
            moved.append(other_id)
    return moved
