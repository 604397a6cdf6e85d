"""The socket type behind a reroute: what a reroute's output carries (its source's type) and
what its input accepts (what its outputs feed).

Reroute chains can be thousands of nodes long: both walks are loops, never recursion, and ``memo``
(shared across calls by the file validator) makes checking every link of a chain linear instead of
quadratic.
"""

from __future__ import annotations

from .registry import ANY, REROUTE


def output_type(graph, node_id: str, output_name: str, memo: dict | None = None) -> str:
    """The socket type an output carries; a reroute carries its source's type."""
    walked: list[str] = []
    seen: set[str] = set()
    while True:
        node = graph.nodes[node_id]
        if node.type_id != REROUTE:
            socket = graph.node_type(node).output(output_name)
            found = socket.type if socket else ANY
            break
        if memo is not None and ("out", node_id) in memo:
            found = memo[("out", node_id)]
            break
        link = graph.inbound(node_id, "in")
        if node_id in seen or link is None:
            found = ANY
            break
        seen.add(node_id)
        walked.append(node_id)
        node_id, output_name = link.src_node, link.src_output
    if memo is not None:
        for reroute in walked:
            memo[("out", reroute)] = found
    return found


def input_type(graph, node_id: str, input_name: str, memo: dict | None = None) -> str:
    """The socket type an input accepts; a reroute takes what its outputs feed (the first
    typed input found depth-first, in link order)."""
    if graph.nodes[node_id].type_id != REROUTE:
        socket = graph.node_type(node_id).input(input_name)
        return socket.type if socket else ANY
    memo = {} if memo is None else memo
    if ("in", node_id) in memo:
        return memo[("in", node_id)]
    stack = [(node_id, iter(graph.outbound(node_id)))]
    on_stack = {node_id}
    while stack:
        current, links = stack[-1]
        link = next(links, None)
        if link is None:
            stack.pop()
            on_stack.discard(current)
            memo[("in", current)] = ANY
            continue
        dst = link.dst_node
        if graph.nodes[dst].type_id != REROUTE:
            socket = graph.node_type(dst).input(link.dst_input)
            found = socket.type if socket else ANY
        elif ("in", dst) in memo:
            found = memo[("in", dst)]
        elif dst in on_stack:
            found = ANY
        else:
            stack.append((dst, iter(graph.outbound(dst))))
            on_stack.add(dst)
            continue
        if found != ANY:
            for reroute, _ in stack:
                memo[("in", reroute)] = found
            return found
    return ANY


def type_problem(graph, src_node: str, src_output: str, dst_node: str, dst_input: str,
                 memo: dict | None = None) -> str:
    """Why the output's type cannot feed the input ("" when it can)."""
    src_type = output_type(graph, src_node, src_output, memo)
    dst_type = input_type(graph, dst_node, dst_input, memo)
    if graph.registry.sockets.compatible(src_type, dst_type):
        return ""
    return (f"type mismatch: {graph.nodes[src_node].title}.{src_output} gives {src_type}, "
            f"{graph.nodes[dst_node].title}.{dst_input} takes {dst_type}")
