"""The node library dock: every node type as a category tree with a search line; a node's
description shows on hover; a double click adds it at the centre of the canvas, a drag drops it
where the mouse lets go (the view reads :data:`NODE_MIME`)."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QMimeData, Qt
from PySide6.QtGui import QDrag
from PySide6.QtWidgets import QLineEdit, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from .search import addable_types, match_score

NODE_MIME = "application/x-latentgraph-node-type"
TYPE_ROLE = Qt.ItemDataRole.UserRole


class _Tree(QTreeWidget):
    """Drags carry the node type id."""

    def startDrag(self, actions) -> None:  # noqa: N802
        item = self.currentItem()
        type_id = item.data(0, TYPE_ROLE) if item is not None else None
        if not type_id:
            return
        mime = QMimeData()
        mime.setData(NODE_MIME, type_id.encode())
        drag = QDrag(self)
        drag.setMimeData(mime)
        drag.exec(Qt.DropAction.CopyAction)


class NodeLibrary(QWidget):
    def __init__(self, registry, add: Callable[[str], None], parent=None) -> None:
        super().__init__(parent)
        self.registry, self.add = registry, add
        self.query = QLineEdit(self)
        self.query.setPlaceholderText("filter nodes…")
        self.query.setClearButtonEnabled(True)
        self.tree = _Tree(self)
        self.tree.setHeaderHidden(True)
        self.tree.setDragEnabled(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.query)
        layout.addWidget(self.tree)
        self.query.textChanged.connect(self.refresh)
        self.tree.itemActivated.connect(self._activated)
        self.refresh()

    def refresh(self) -> None:
        """The tree of the types the filter finds (all of them when it is empty), expanded while
        filtering so every match shows."""
        query = self.query.text().strip()
        self.tree.clear()
        folders: dict[str, QTreeWidgetItem] = {}
        types = sorted(addable_types(self.registry), key=lambda t: (t.category, t.title))
        for node_type in types:
            if query and match_score(query, node_type) is None:
                continue
            parent = self.tree.invisibleRootItem()
            path = ""
            for part in (node_type.category or "other").split("/"):
                path = f"{path}/{part}"
                if path not in folders:
                    folders[path] = QTreeWidgetItem(parent, [part])
                    folders[path].setFlags(Qt.ItemFlag.ItemIsEnabled)
                parent = folders[path]
            item = QTreeWidgetItem(parent, [node_type.title])
            item.setData(0, TYPE_ROLE, node_type.type_id)
            item.setToolTip(0, node_type.description or node_type.type_id)
            item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsDragEnabled)
        if query:
            self.tree.expandAll()

    def type_items(self) -> dict[str, QTreeWidgetItem]:
        """Type id -> its item, as shown now (for tests and scripting)."""
        found = {}
        stack = [self.tree.topLevelItem(i) for i in range(self.tree.topLevelItemCount())]
        while stack:
            item = stack.pop()
            if item.data(0, TYPE_ROLE):
                found[item.data(0, TYPE_ROLE)] = item
            stack.extend(item.child(i) for i in range(item.childCount()))
        return found

    def _activated(self, item: QTreeWidgetItem, _column: int = 0) -> None:
        type_id = item.data(0, TYPE_ROLE)
        if type_id:
            self.add(type_id)
