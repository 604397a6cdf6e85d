import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Converted copies of checkpoints (nodes/converted_copies.py) go to a folder of this run, not the
# user's cache; subprocesses (the CLI tests) inherit it.
os.environ.setdefault("LATENTGRAPH_CONVERTED_DIR", tempfile.mkdtemp(prefix="latentgraph_test_copies_"))
atexit.register(shutil.rmtree, os.environ["LATENTGRAPH_CONVERTED_DIR"], ignore_errors=True)
sys.path.insert(0, str(Path(__file__).parent))

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_sd(tmp_path_factory):
    """A tiny random SD-layout model folder, built once per session."""
    from nodes.tiny_models import make_tiny_sd

    return make_tiny_sd(tmp_path_factory.mktemp("tiny_sd"))


@pytest.fixture(scope="session")
def tiny_sdxl(tmp_path_factory):
    """A tiny random SDXL base model folder (two text encoders), built once per session."""
    from nodes.tiny_models import make_tiny_sdxl

    return make_tiny_sdxl(tmp_path_factory.mktemp("tiny_sdxl"))


@pytest.fixture(scope="session")
def tiny_sdxl_refiner(tmp_path_factory):
    """A tiny random SDXL refiner folder (second encoder only, aesthetic-score time ids)."""
    from nodes.tiny_models import make_tiny_sdxl

    return make_tiny_sdxl(tmp_path_factory.mktemp("tiny_sdxl_refiner"), refiner=True)


@pytest.fixture
def kit():
    """Trivial node types (const, add, sleep, fail, ...) in a fresh registry."""
    from graph_fixtures import make_kit

    return make_kit()


@pytest.fixture
def graph(kit):
    from graphs import Graph

    return Graph(kit.registry)
