"""The canvas context menu (a right click, never a right drag): what it offers for a node,
a link, a frame or the empty canvas. Its entries are menu commands, like the menu bar's,
so they call the controller directly."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, QPoint
from PySide6.QtWidgets import QMenu

from . import theme
from .frame_item import FrameItem
from .link_item import LinkItem
from .mask_editor import MASKABLE_TYPES, open_mask_editor, unavailable_reason
from .node_item import NodeItem
from .search import addable_types


class ContextMenus(QObject):
    """Opens the menu the view asks for (``view.context_menu_requested``); ``menu`` is the
    last one opened (None until then)."""

    def __init__(self, view, controller, run_to: Callable[[list[str]], object], parent=None,
                 document=None) -> None:
        super().__init__(parent)
        self.view, self.controller, self.run_to = view, controller, run_to
        self.document = document  # the workflow's file: where Edit mask… saves
        self.menu: QMenu | None = None
        self.mask_editor = None  # the last mask editor opened
        view.context_menu_requested.connect(self.show_at)

    def show_at(self, pos: QPoint) -> QMenu:
        view, c = self.view, self.controller
        scene = view.scene()
        scene_pos = view.mapToScene(pos)
        item = view.itemAt(pos)
        while item is not None and not isinstance(item, (NodeItem, LinkItem, FrameItem)):
            item = item.parentItem()
        menu = QMenu(view)
        if isinstance(item, NodeItem):
            if not item.isSelected():
                scene.select_nodes([item.node_id])
            ids = scene.selected_node_ids()
            node = item.node
            menu.addAction("Run to here\tCtrl+Shift+Return", lambda: self.run_to([item.node_id]))
            menu.addSeparator()
            if node.type_id in MASKABLE_TYPES:
                edit_mask = menu.addAction("Edit mask…", lambda: self.edit_mask(item.node_id))
                why = unavailable_reason(c.graph, item.node_id)
                edit_mask.setEnabled(not why)
                edit_mask.setToolTip(why or "paint the mask the node outputs over its image")
                menu.setToolTipsVisible(True)
                menu.addSeparator()
            # the text after a tab is the shortcut column: the keys that do the same from the canvas
            menu.addAction(("Unbypass" if node.flags.get("bypass") else "Bypass") + "\tCtrl+B",
                           lambda: c.toggle_flag("bypass", ids))
            menu.addAction(("Unmute" if node.flags.get("mute") else "Mute") + "\tCtrl+M",
                           lambda: c.toggle_flag("mute", ids))
            menu.addAction("Expand" if node.flags.get("collapsed") else "Collapse",
                           lambda: c.toggle_collapse(ids))
            menu.addAction("Rename…", lambda: c.rename_node(item.node_id))
            colors = menu.addMenu("Colour")
            for name, value in theme.COLOR_CHOICES.items():
                colors.addAction(name, lambda v=value: c.set_color(v, ids))
            menu.addAction("Duplicate\tCtrl+D", c.duplicate)
            menu.addAction("Group in frame\tCtrl+G", c.group)
            menu.addSeparator()
            menu.addAction("Delete\tDelete", c.delete_selected)
        elif isinstance(item, LinkItem):
            menu.addAction("Insert reroute", lambda: c.insert_reroute(
                item.link_id, (scene_pos.x() - 9, scene_pos.y() - 9)))
            menu.addAction("Delete link", lambda: c.disconnect([item.link_id]))
        elif isinstance(item, FrameItem):
            menu.addAction("Rename frame…", lambda: c.rename_frame(item.frame_id))
            colors = menu.addMenu("Colour")
            for name, value in theme.COLOR_CHOICES.items():
                colors.addAction(name, lambda v=value: c.set_frame_color(
                    item.frame_id, v or theme.FRAME_DEFAULT_COLOR))
            menu.addAction("Delete frame", lambda: c.delete_items(frame_ids=[item.frame_id]))
        else:
            menu.addAction("Add node…\tTab", lambda: view.open_search(scene_pos))
            self._add_submenu(menu.addMenu("Add"), scene_pos)
            menu.addAction("Paste\tCtrl+V", lambda: c.paste(at=(scene_pos.x(), scene_pos.y())))
            menu.addAction("Frame all\tHome", view.frame_all)
        self.menu = menu
        menu.popup(view.viewport().mapToGlobal(pos))
        return menu

    def edit_mask(self, node_id: str):
        """Open the mask editor on a Load image node; the dialog, or None if the image is unreadable."""
        error = self.document.error if self.document is not None else None
        self.mask_editor = open_mask_editor(node_id, self.controller, self.document, self.view.window(), error)
        return self.mask_editor

    def _add_submenu(self, menu: QMenu, scene_pos) -> None:
        """Every node type by category (``a/b`` nests), each with its description as a tooltip."""
        menu.setToolTipsVisible(True)
        submenus: dict[str, QMenu] = {}
        types = sorted(addable_types(self.view.scene().graph.registry), key=lambda t: (t.category, t.title))
        for node_type in types:
            parent, path = menu, ""
            for part in (node_type.category or "other").split("/"):
                path = f"{path}/{part}"
                if path not in submenus:
                    submenus[path] = parent.addMenu(part)
                    submenus[path].setToolTipsVisible(True)
                parent = submenus[path]
            action = parent.addAction(node_type.title, lambda t=node_type.type_id: self.view.add_node_requested.emit(
                t, (scene_pos.x(), scene_pos.y()), None))
            action.setToolTip(node_type.description or node_type.type_id)
