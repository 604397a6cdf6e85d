"""What the ``latentgraph`` subcommands share: exit codes, the bad-input error, loading a
workflow with the node library and plugins, and ``--set`` / ``--device`` overrides."""

from __future__ import annotations

import os
import sys

EXIT_OK, EXIT_NODE_FAILED, EXIT_BAD_INPUT, EXIT_CANCELLED = 0, 1, 2, 130


class BadInput(Exception):
    """Wrong arguments or a bad workflow file; printed as one ``error:`` line."""


def print_error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def load_node_library() -> None:
    """Register LatentGraph's node types and the installed plugins' (a plugin that fails is
    skipped and reported by ``latentgraph nodes``)."""
    import nodes

    nodes.load_plugins()


def load_workflow(path: str, quiet: bool = False):
    """The graph of a workflow file or an image carrying one, ours or ComfyUI's (whose import
    report goes to stderr)."""
    return load_workflow_and_report(path, quiet)[0]


def load_workflow_and_report(path: str, quiet: bool = False):
    from graphs import workflow
    from nodes.comfyui import load_any

    load_node_library()
    try:
        graph, report = load_any(path)
    except workflow.WorkflowError as exc:
        raise BadInput(str(exc) if exc.file else f"{path}: {exc}") from None
    if report is not None and not quiet:
        print(report.text(), file=sys.stderr)
    return graph, report


def missing_types_text(graph) -> str:
    """``type (N nodes: titles)`` for each node type of ``graph`` nobody provides."""
    from graphs.placeholders import missing_types

    parts = []
    for type_id, node_ids in missing_types(graph).items():
        titles = ", ".join(repr(graph.nodes[n].title) for n in node_ids[:5])
        more = f", +{len(node_ids) - 5} more" if len(node_ids) > 5 else ""
        parts.append(f"{type_id} ({len(node_ids)} node{'s' if len(node_ids) != 1 else ''}: {titles}{more})")
    return "; ".join(parts)


def apply_sets(graph, assignments: list[str]) -> None:
    """Apply ``TITLE.PARAM=VALUE`` overrides, parsing VALUE by the param's kind."""
    from graphs import GraphError

    for item in assignments:
        key, sep, value = item.partition("=")
        node_key, dot, param_name = key.rpartition(".")
        if not sep or not dot or not node_key or not param_name:
            raise BadInput(f"--set {item!r}: expected TITLE.PARAM=VALUE")
        try:
            node = graph.find_node(node_key)
        except GraphError as exc:
            raise BadInput(f"--set {item!r}: {exc}") from None
        param = graph.node_type(node).param(param_name)
        if param is None:
            names = ", ".join(p.name for p in graph.node_type(node).params) or "none"
            raise BadInput(f"--set {item!r}: {node.title} has no param {param_name!r} "
                           f"(params: {names})")
        try:
            graph.set_param(node.id, param_name, param.parse(value))
        except (ValueError, GraphError) as exc:
            raise BadInput(f"--set {item!r}: {exc}") from None


def apply_device(graph, device: str) -> None:
    """``--device``: set every param declared with ``role="device"`` (Load model's device)."""
    for node in graph.nodes.values():
        for param in graph.node_type(node).params:
            if param.role == "device":
                try:
                    graph.set_param(node.id, param.name, param.parse(device))
                except ValueError as exc:
                    raise BadInput(f"--device {device}: {node.title}.{param.name}: {exc}") from None


def add_model_folder_args(parser) -> None:
    parser.add_argument("--models-dir", metavar="DIR",
                        help="a models folder in ComfyUI's layout (checkpoints/, loras/, vae/, embeddings/...): "
                             "file params may name files in it")
    parser.add_argument("--extra-model-paths", metavar="YAML", help="ComfyUI's extra_model_paths.yaml")
    parser.add_argument("--model-cache-gb", metavar="GIB",
                        help="memory the loaded models may keep (least recently used go first; default: half the RAM)")


def apply_model_folder_args(args) -> None:
    """The folders go into the environment, so every run of this process (local sweep cells
    included) finds names in them, as LATENTGRAPH_MODELS_DIR would."""
    from nodes.model_folders import ENV_EXTRA, ENV_MODELS

    if getattr(args, "models_dir", None):
        if not os.path.isdir(os.path.expanduser(args.models_dir)):
            raise BadInput(f"--models-dir {args.models_dir}: not a folder")
        os.environ[ENV_MODELS] = os.pathsep.join(
            p for p in (os.path.expanduser(args.models_dir), os.environ.get(ENV_MODELS, "")) if p)
    if getattr(args, "extra_model_paths", None):
        if not os.path.isfile(os.path.expanduser(args.extra_model_paths)):
            raise BadInput(f"--extra-model-paths {args.extra_model_paths}: not a file")
        os.environ[ENV_EXTRA] = os.path.expanduser(args.extra_model_paths)
    if getattr(args, "model_cache_gb", None) is not None:
        from nodes.model_cache import set_budget_gb

        try:
            set_budget_gb(args.model_cache_gb)
        except ValueError as exc:
            raise BadInput(f"--model-cache-gb: {exc}") from None
