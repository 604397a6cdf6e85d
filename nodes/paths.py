"""Where bundled resources live (source checkout or installed package)."""

from __future__ import annotations

from pathlib import Path

BUNDLED_MODEL_NAME = "latentgraph-shapes"


def resources_dir() -> Path:
    here = Path(__file__).resolve().parent.parent / "resources"
    if here.is_dir():
        return here
    import latentgraph_resources  # installed wheel: resources/ is packaged under this name

    return Path(latentgraph_resources.__file__).resolve().parent


def bundled_model_dir() -> Path:
    return resources_dir() / "models" / BUNDLED_MODEL_NAME


def workflows_dir() -> Path:
    return resources_dir() / "workflows"
