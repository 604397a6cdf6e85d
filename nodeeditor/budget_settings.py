"""The editor's saved budgets (QSettings): the model cache's memory and the converted copies' disk.
File → Settings writes them; the editor's start applies them unless the environment already sets
them (the user's shell, or a CLI flag, said so for this process)."""

from __future__ import annotations

import os

from .cli_common import print_error

CACHE_SETTING = "models/cache_gb"  # the editor's model cache budget in GiB (QSettings; empty: the default)
CONVERTED_SETTING = "models/converted_gb"  # the converted copies' disk budget in GiB (QSettings; 0: off)


def parse_converted_gb(value: object) -> float:
    """A converted-copies budget in GiB (0 turns copies off); ValueError naming the value otherwise."""
    try:
        gib = float(str(value))
    except ValueError:
        raise ValueError(f"converted copies budget {value!r}: expected a number of GiB") from None
    if not 0 <= gib < float("inf"):
        raise ValueError(f"converted copies budget {value!r}: expected a number of GiB, 0 or more")
    return gib


def apply_cache_setting() -> None:
    """The editor's model cache and converted-copies budgets from its settings; a budget the
    environment sets wins (the user's shell, or the CLI flag, said so for this process)."""
    from nodes import converted_copies
    from nodes.model_cache import BUDGET_ENV, set_budget_gb

    if os.environ.get(BUDGET_ENV) and os.environ.get(converted_copies.BUDGET_ENV):
        return
    try:
        from PySide6.QtCore import QSettings

        from .document import APP_NAME
    except ImportError:
        return
    settings = QSettings(APP_NAME, APP_NAME)
    value = settings.value(CACHE_SETTING)
    if not os.environ.get(BUDGET_ENV) and value not in (None, ""):
        try:
            set_budget_gb(str(value))
        except ValueError as exc:
            print_error(f"settings {CACHE_SETTING}: {exc}; using the default")
    value = settings.value(CONVERTED_SETTING)
    if not os.environ.get(converted_copies.BUDGET_ENV) and value not in (None, ""):
        try:
            os.environ[converted_copies.BUDGET_ENV] = repr(parse_converted_gb(value))
        except ValueError as exc:
            print_error(f"settings {CONVERTED_SETTING}: {exc}; using the default")
