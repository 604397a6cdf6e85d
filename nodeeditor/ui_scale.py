"""View → UI scale: node text at 90%–150% (``theme.set_ui_scale``), kept in QSettings and applied
live (the canvas is rebuilt). Node geometry stays as it is up to 125%, the default, and grows with
the text past it: node positions stay, so at 150% a graph laid out tightly may need its nodes
moved apart."""

from __future__ import annotations

from PySide6.QtGui import QAction, QActionGroup

from . import theme

SETTING = "view/ui_scale"  # percent
DEFAULT_PERCENT = round(theme.DEFAULT_UI_SCALE * 100)  # legible at a whole bundled workflow's zoom


def saved_percent(settings) -> int:
    try:
        percent = int(float(settings.value(SETTING, DEFAULT_PERCENT)))
    except (TypeError, ValueError):
        percent = DEFAULT_PERCENT
    allowed = [round(s * 100) for s in theme.UI_SCALES]
    return min(allowed, key=lambda p: abs(p - percent))


def apply_scale(window, percent: int) -> None:
    """Set the scale, remember it, and lay the canvas out again at it."""
    if round(theme.UI_SCALE * 100) == percent and hasattr(window, "ui_scale_actions"):
        return
    theme.set_ui_scale(percent / 100)
    window.settings.setValue(SETTING, percent)
    action = getattr(window, "ui_scale_actions", {}).get(percent)
    if action is not None and not action.isChecked():
        action.setChecked(True)
    window.scene.rebuild()
    from .panels import pil_to_qimage

    for node_id, image in window.runs.node_images.items():  # the thumbnails the run left
        item = window.scene.node_items.get(node_id)
        if item is not None:
            item.set_image(pil_to_qimage(image))
    window.view.schedule_widgets()
    window.view.viewport().update()
    minimap = getattr(window, "minimap", None)
    if minimap is not None:
        minimap.schedule()
    window.status(f"UI scale {percent}%")


def install_ui_scale(window) -> None:
    """Apply the saved scale (before any node is laid out) and add View → UI scale."""
    from .gallery import view_menu

    percent = saved_percent(window.settings)
    theme.set_ui_scale(percent / 100)
    menu = view_menu(window)
    if menu is None:
        return
    sub = menu.addMenu("UI &scale")
    group = QActionGroup(window)
    group.setExclusive(True)
    window.ui_scale_actions = {}
    for scale in theme.UI_SCALES:
        p = round(scale * 100)
        action = QAction(f"{p}%", window)
        action.setObjectName(f"ui_scale_{p}")
        action.setCheckable(True)
        action.setChecked(p == percent)
        action.triggered.connect(lambda _checked=False, p=p: apply_scale(window, p))
        group.addAction(action)
        sub.addAction(action)
        window.ui_scale_actions[p] = action
