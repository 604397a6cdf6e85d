"""A run's readable parameters (prompt, seed, steps...), built from declarations.

Each :class:`Param` with ``report="key"`` reports its value under that key; an input
:class:`Socket` with ``report="role"`` re-keys what the node feeding it reports as
``"role_key"`` (UNet denoise's ``positive`` input turns the text encoder's ``prompt`` into
``positive_prompt``). The role passes through nodes that report nothing (reroutes) and
stops at the first node that does. Nothing here knows a node type by its id, so a plugin's
node reports the same way.
"""

from __future__ import annotations

from collections import deque
from typing import Any


def run_parameters(graph, node_id: str) -> dict[str, Any]:
    """What the nodes upstream of ``node_id`` (and it) report; the nearest node wins a key."""
    inbound: dict[str, list] = {}
    for link in graph.links.values():
        inbound.setdefault(link.dst_node, []).append(link)
    found: dict[str, Any] = {}
    queue, seen = deque([(node_id, "")]), {node_id}
    while queue:
        current, role = queue.popleft()
        node = graph.nodes[current]
        node_type = graph.node_type(node)
        reported = False
        for param in node_type.params:
            if param.report and not graph.param_overridden(current, param.name):
                found.setdefault(f"{role}_{param.report}" if role else param.report,
                                 node.params.get(param.name, param.default))
                reported = True
        for link in sorted(inbound.get(current, ()), key=lambda ln: (ln.dst_input, ln.id)):
            if link.src_node in seen:
                continue
            seen.add(link.src_node)
            socket = node_type.input(link.dst_input)
            queue.append((link.src_node, socket.report if socket is not None and socket.report
                          else ("" if reported else role)))
    return found
