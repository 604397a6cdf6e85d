"""Primitive value nodes, so any param can be driven from one place."""

from __future__ import annotations

from graphs.registry import SEED_MAX, NodeType, Param, Socket

from .diffusion import SEED_CONTROLS, seed_after_run

PRIMITIVES = (
    NodeType("value.int", "Integer", "values", lambda ctx, value: {"value": value},
             outputs=(Socket("value", "INT"),),
             params=(Param("value", "int", 0, min=-(2**53), max=2**53, linkable=False),)),
    NodeType("value.float", "Float", "values", lambda ctx, value: {"value": float(value)},
             outputs=(Socket("value", "FLOAT"),),
             params=(Param("value", "float", 0.0, linkable=False),)),
    NodeType("value.string", "String", "values", lambda ctx, value: {"value": value},
             outputs=(Socket("value", "STRING"),),
             params=(Param("value", "text", "", linkable=False),)),
    NodeType("value.seed", "Seed", "values", lambda ctx, seed, control: {"seed": seed},
             outputs=(Socket("seed", "INT"),),
             params=(Param("seed", "seed", 0, min=0, max=SEED_MAX, linkable=False, report="seed"),
                     Param("control", "choice", "fixed", choices=SEED_CONTROLS, linkable=False,
                           drives="seed")),
             after_run=seed_after_run),
    # A note on the canvas (ComfyUI's Note and MarkdownNote import as this); it never runs.
    NodeType("note.text", "Note", "utility", lambda ctx, text: {},
             params=(Param("text", "text", "", linkable=False),),
             aliases=("Note", "MarkdownNote", "comment"),
             description="Text on the canvas for whoever reads the workflow; it never runs."),
)
NODE_TYPES = PRIMITIVES
