"""The view's interaction modes, one small class per module.

A mode starts on a mouse press (the view picks it), gets every ``move(event)`` and ends
with ``release(event)``; while one is active the view does nothing else with the mouse.
Modes never touch the model or the controller: they emit the view's request signals.
Rubber-band selection and moving nodes are Qt's own and need no mode.
"""

from .cut import EdgeCutMode
from .pan import PanMode
from .wire import EdgeDragMode

__all__ = ["EdgeCutMode", "EdgeDragMode", "PanMode"]
