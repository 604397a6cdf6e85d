"""Defaults of the settings a run hands its nodes (``RunContext.settings``), defined once
for the editor, the CLI and the nodes.

``output_dir``: where nodes that write files (Save image) put them. Unset, it is
``output`` under the current working directory, whoever starts the run.
"""

from __future__ import annotations

DEFAULT_OUTPUT_DIR = "output"
