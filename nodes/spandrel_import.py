"""``import spandrel`` without torchvision.

spandrel 0.4.2 declares torchvision as a dependency, and importing it imports every architecture
it knows; two of them import torchvision at module level: LaMa (an inpainter:
``from torchvision.transforms.functional import InterpolationMode, rotate``) and RestoreFormer (a
face restorer: ``... import normalize``). This app does not install torchvision: its torch is a
CPU build, and PyPI's torchvision wheel is a CUDA build that fails to import beside it ("operator
torchvision::nms does not exist"). So spandrel is installed with ``pip install --no-deps`` (see
README), and when torchvision cannot be imported, a stand-in holding exactly those three names is
put in ``sys.modules`` for the length of spandrel's import, then taken out again: the two modules
keep their references, and nothing else in the process ever sees a fake torchvision (transformers
and diffusers probe for it). The stand-in's functions raise if called; they never are, because
the upscale nodes refuse inpainting and face-restoration models before running one.
"""

from __future__ import annotations

import enum
import importlib
import importlib.util
import sys
import threading
import types

_NAMES = ("torchvision", "torchvision.transforms", "torchvision.transforms.functional")
_lock = threading.Lock()


class InterpolationMode(enum.Enum):
    """The members LaMa names in its calls (evaluated before the stand-in ``rotate`` raises)."""

    NEAREST = "nearest"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"


def _missing(name: str):
    def refuse(*args, **kwargs):
        raise RuntimeError(f"torchvision.transforms.functional.{name} is not available: this model needs "
                           "torchvision, which LatentGraph does not install")
    refuse.__name__ = name
    return refuse


def _stand_in() -> dict[str, types.ModuleType]:
    modules = {name: types.ModuleType(name, "stand-in for spandrel's import (nodes/spandrel_import.py)")
               for name in _NAMES}
    functional = modules["torchvision.transforms.functional"]
    functional.InterpolationMode = InterpolationMode
    functional.rotate, functional.normalize = _missing("rotate"), _missing("normalize")
    modules["torchvision"].transforms = modules["torchvision.transforms"]
    modules["torchvision.transforms"].functional = functional
    return modules


def _torchvision_importable() -> bool:
    try:
        import torchvision.transforms.functional  # noqa: F401
    except Exception:  # not installed, or a build that does not fit this torch
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]  # a half-imported broken torchvision must not stay behind
        return False
    return True


def import_spandrel() -> types.ModuleType:
    """The ``spandrel`` module, imported with the stand-in if torchvision is missing."""
    if "spandrel" in sys.modules:
        return sys.modules["spandrel"]
    with _lock:
        if importlib.util.find_spec("spandrel") is None:
            raise ImportError("spandrel is not installed (upscale models need it): "
                              "pip install --no-deps spandrel==0.4.2")
        if "spandrel" in sys.modules or _torchvision_importable():
            return importlib.import_module("spandrel")
        modules = _stand_in()
        sys.modules.update(modules)
        try:
            return importlib.import_module("spandrel")
        finally:
            for name, module in modules.items():
                if sys.modules.get(name) is module:
                    del sys.modules[name]
