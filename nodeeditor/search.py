"""The fuzzy add-node popup (Tab, Shift+A, double-click, or a wire dropped on empty canvas)."""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtWidgets import QFrame, QLabel, QLineEdit, QListWidget, QListWidgetItem, QVBoxLayout

from graphs import REROUTE, NodeType


def fuzzy_score(query: str, text: str) -> float | None:
    """Higher is better; None when ``query`` does not match ``text``.

    A substring scores highest (earlier is better). Otherwise each query letter must
    continue the previous match or start a word ("vdec" finds "VAE decode", "ksam"
    finds "KSampler"), so stray letters scattered through a name do not match.
    """
    query, text = query.lower().strip(), text.lower()
    if not query:
        return 0.0
    if query in text:
        start = text.index(query)
        return 100.0 - start + (20.0 if start == 0 or text[start - 1] in " ._/-" else 0.0)
    score, pos, prev = 0.0, 0, -2
    for ch in query:
        if ch == " ":
            continue
        found = -1
        for i in range(pos, len(text)):
            if text[i] == ch and (i == prev + 1 or i == 0 or text[i - 1] in " ._/-"):
                found = i
                break
        if found < 0:
            return None
        score += 5.0 if found == prev + 1 else 3.0
        prev, pos = found, found + 1
    return score - len(text) * 0.05


def rank(query: str, node_types: list[NodeType]) -> list[NodeType]:
    scored = []
    for node_type in node_types:
        best = None
        for text, weight in ((node_type.title, 1.0), (node_type.type_id, 0.8),
                             (f"{node_type.category} {node_type.title}", 0.7)):
            score = fuzzy_score(query, text)
            if score is not None and (best is None or score * weight > best):
                best = score * weight
        if best is not None:
            scored.append((-best, node_type.category, node_type.title, node_type))
    scored.sort(key=lambda t: t[:3])
    return [t[3] for t in scored]


class SearchPopup(QFrame):
    """A popup with a query line and a ranked list. ``chosen(type_id)`` or ``dismissed``."""

    chosen = Signal(str)
    dismissed = Signal()

    def __init__(self, node_types: list[NodeType], parent=None, title: str = "Add node") -> None:
        super().__init__(parent, Qt.WindowType.Popup)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.node_types = [t for t in node_types]
        self._done = False
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(4)
        self.hint = QLabel(title, self)
        self.hint.setObjectName("searchHint")
        self.query = QLineEdit(self)
        self.query.setPlaceholderText("search nodes…")
        self.list = QListWidget(self)
        layout.addWidget(self.hint)
        layout.addWidget(self.query)
        layout.addWidget(self.list)
        self.resize(300, 340)
        self.setObjectName("searchPopup")
        self.setStyleSheet("#searchPopup{background:#24272b;border:1px solid #4a5059;}"
                           "QLabel{border:none;color:#8d939c;}"
                           "QLineEdit{padding:4px;font-size:10pt;}"
                           "QListWidget{font-size:9.5pt;}")
        self.query.textChanged.connect(self.refresh)
        self.query.returnPressed.connect(self.accept_current)
        self.list.itemActivated.connect(lambda _item: self.accept_current())
        self.list.itemClicked.connect(lambda _item: self.accept_current())
        self.query.installEventFilter(self)
        self.refresh()

    def refresh(self) -> None:
        self.list.clear()
        for node_type in rank(self.query.text(), self.node_types):
            item = QListWidgetItem(f"{node_type.title}    · {node_type.category}")
            item.setData(Qt.ItemDataRole.UserRole, node_type.type_id)
            item.setToolTip(node_type.description or node_type.type_id)
            self.list.addItem(item)
        if self.list.count():
            self.list.setCurrentRow(0)

    def results(self) -> list[str]:
        return [self.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.list.count())]

    def eventFilter(self, obj, event) -> bool:  # noqa: N802
        if obj is self.query and event.type() == event.Type.KeyPress:
            key = event.key()
            if key in (Qt.Key.Key_Down, Qt.Key.Key_Up):
                row = self.list.currentRow() + (1 if key == Qt.Key.Key_Down else -1)
                self.list.setCurrentRow(max(0, min(self.list.count() - 1, row)))
                return True
            if key == Qt.Key.Key_Escape:
                self.close()
                return True
        return super().eventFilter(obj, event)

    def accept_current(self) -> None:
        item = self.list.currentItem()
        if item is None or self._done:
            return
        self._done = True
        type_id = item.data(Qt.ItemDataRole.UserRole)
        self.close()
        self.chosen.emit(type_id)

    def choose(self, type_id: str) -> None:
        """Pick ``type_id`` as if the user selected it (tests, scripting)."""
        self._done = True
        self.close()
        self.chosen.emit(type_id)

    def closeEvent(self, event) -> None:  # noqa: N802
        super().closeEvent(event)
        if not self._done:
            self._done = True
            self.dismissed.emit()

    def show_at(self, global_pos: QPoint) -> None:
        self.move(global_pos)
        self.show()
        self.query.setFocus()


def wire_socket(registry, node_type: NodeType, wire) -> str | None:
    """The socket of a new ``node_type`` node that a dropped wire would plug into.

    ``wire`` is (node id, socket name, whether it is an output, socket type)."""
    _node_id, _name, from_output, type_name = wire
    sockets = registry.sockets
    if from_output:
        for sock in node_type.all_inputs():
            if sockets.compatible(type_name, sock.type):
                return sock.name
    else:
        for sock in node_type.outputs:
            if sockets.compatible(sock.type, type_name):
                return sock.name
    return None


def addable_types(registry, wire=None) -> list[NodeType]:
    """What the popup offers: every node type but reroutes, or, for a dropped wire, the
    types with a socket it fits (reroutes included)."""
    types = list(registry.nodes.values())
    if wire is None:
        return [t for t in types if t.type_id != REROUTE]
    return [t for t in types if wire_socket(registry, t, wire) is not None]
