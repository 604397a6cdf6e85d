"""Qt-free, torch-free core of LatentGraph: graph model, commands, workflow files, executor."""

from .commands import (
    AddNodes,
    Command,
    Connect,
    Disconnect,
    Fragment,
    Group,
    Macro,
    MoveNodes,
    Paste,
    RemoveItems,
    SetFlags,
    SetFrame,
    SetNodeColor,
    SetNodeSize,
    SetParam,
    SetTitle,
    UndoStack,
    copy_fragment,
)
from .events import Emitter
from .executor import (
    Cancelled,
    Executor,
    NodeFailure,
    RunContext,
    RunResult,
    current_context,
)
from .model import FLAG_NAMES, Frame, Graph, GraphError, Link, Node, View, new_id
from .output_cache import OutputCache
from .registry import (
    ANY,
    REROUTE,
    NodeType,
    NodeTypes,
    Param,
    Registry,
    Socket,
    SocketType,
    SocketTypes,
    base_registry,
    default_registry,
)
from .workflow import WorkflowError

__all__ = [
    "ANY", "REROUTE", "AddNodes", "Cancelled", "Command", "Connect", "Disconnect", "Emitter",
    "Executor", "FLAG_NAMES", "Fragment", "Frame", "Graph", "GraphError", "Group", "Link", "Macro",
    "MoveNodes", "Node", "NodeFailure", "NodeType", "NodeTypes", "OutputCache", "Param", "Paste",
    "Registry", "RemoveItems", "RunContext", "RunResult", "SetFlags", "SetFrame",
    "SetNodeColor", "SetNodeSize", "SetParam", "SetTitle",
    "Socket", "SocketType", "SocketTypes", "UndoStack", "View", "WorkflowError", "base_registry",
    "copy_fragment", "current_context", "default_registry", "new_id",
]
