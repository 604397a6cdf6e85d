"""A node added to a graph takes the settings of the model that graph uses, not the generic ones:
UNet denoise the model's CFG, Scheduler its recommended sampler and steps (a model folder's
latentgraph.json, else the family's pipeline defaults). Read from configs and file headers only:
nothing is loaded, so it costs milliseconds on the GUI thread."""

from __future__ import annotations

from typing import Any

from graphs import Graph


def fitting_params(graph: Graph, type_id: str, settings: dict[str, Any]) -> dict[str, Any]:
    """Params for a new ``type_id`` node from the one model the graph loads ({} when none or several)."""
    if type_id not in ("sd.unet_denoise", "sd.scheduler"):
        return {}
    sources = {str(n.params.get("source", "bundled")) for n in graph.nodes.values() if n.type_id == "sd.load_model"}
    if len(sources) != 1:
        return {}
    from nodes.families.catalog import FAMILIES
    from nodes.model_folders import resolve_named
    from nodes.model_probe import probe
    from nodes.model_sources import ModelLoadError, model_settings, resolve_source
    from nodes.schedulers import SCHEDULERS

    try:
        source = resolve_named("checkpoints", sources.pop(), settings)
        described = probe(source)
        recommended = model_settings(resolve_source(source))
    except (ModelLoadError, OSError, ValueError):
        return {}  # a model that is not there yet: the generic defaults
    family = FAMILIES.get(described.get("family") or "")
    if type_id == "sd.unet_denoise":
        cfg = recommended.get("cfg", family.cfg if family else None)
        return {"cfg": float(cfg)} if isinstance(cfg, (int, float)) else {}
    out: dict[str, Any] = {}
    if isinstance(recommended.get("steps"), int):
        out["steps"] = recommended["steps"]
    scheduler = recommended.get("scheduler")
    name = scheduler if scheduler in SCHEDULERS else next(
        (ui for ui, (cls, fixed) in SCHEDULERS.items() if cls == scheduler and not fixed), None)
    if name:
        out["name"] = name
    return out
