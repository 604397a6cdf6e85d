"""The fuzzy add-node popup (Tab, Shift+A, double-click, or a wire dropped on empty canvas)."""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtWidgets import QFrame, QLabel, QLineEdit, QListWidget, QListWidgetItem, QVBoxLayout

from graphs import NodeType


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


TYPO_THRESHOLD = 80  # rapidfuzz's similarity (0-100) a misspelt name must reach
EXACT = 200.0  # the query is a node's title or one of its aliases (ComfyUI's name, say)


def _names(node_type: NodeType) -> list[tuple[str, float]]:
    """What a query is matched against, each with its weight."""
    return [(node_type.title, 1.0), *((alias, 0.95) for alias in node_type.aliases),
            (node_type.type_id, 0.8), (f"{node_type.category} {node_type.title}", 0.7)]


def match_score(query: str, node_type: NodeType) -> float | None:
    """How well ``query`` names ``node_type`` (None: not at all). Exact names first, then
    substrings and word-start abbreviations (``fuzzy_score``), then misspellings (rapidfuzz's
    weighted ratio: typo-tolerant, so "ksmapler" still finds KSampler) and words of the
    description, each tier below the one before."""
    from rapidfuzz import fuzz

    wanted = query.strip().lower()
    names = _names(node_type)
    if any(wanted == text.lower() for text, _ in names[:1 + len(node_type.aliases)]):
        return EXACT
    scores = [s * w for text, w in names if (s := fuzzy_score(wanted, text)) is not None]
    if scores:
        return max(scores)
    if len(wanted) >= 4:
        typo = max(fuzz.WRatio(wanted, text.lower()) for text, _ in names[:1 + len(node_type.aliases)])
        if typo >= TYPO_THRESHOLD:
            return typo * 0.3
    if len(wanted) >= 3 and wanted in node_type.description.lower():
        return 10.0
    return None


def rank(query: str, node_types: list[NodeType], usage: dict[str, int] | None = None) -> list[NodeType]:
    """The types ``query`` finds, best first: by match, then by how often the user added them."""
    usage = usage or {}
    scored = []
    for node_type in node_types:
        score = match_score(query, node_type) if query.strip() else 0.0
        if score is not None:
            score += min(usage.get(node_type.type_id, 0), 20)
            scored.append((-score, node_type.category, node_type.title, node_type))
    scored.sort(key=lambda t: t[:3])
    return [t[3] for t in scored]


def nearest_names(query: str, node_types: list[NodeType], limit: int = 3) -> list[str]:
    """For a query that finds nothing: the node titles closest to it."""
    from rapidfuzz import fuzz, process

    choices = {name: t.title for t in node_types for name, _ in _names(t)[:1 + len(t.aliases)]}
    found = process.extract(query.strip().lower(), [c.lower() for c in choices], scorer=fuzz.WRatio, limit=limit * 3)
    by_lower = {c.lower(): c for c in choices}
    titles: list[str] = []
    for text, _score, _index in found:
        title = choices[by_lower[text]]
        if title not in titles:
            titles.append(title)
    return titles[:limit]


class SearchPopup(QFrame):
    """A popup with a query line and a ranked list. ``chosen(type_id)`` or ``dismissed``."""

    chosen = Signal(str)
    dismissed = Signal()

    def __init__(self, node_types: list[NodeType], parent=None, title: str = "Add node",
                 usage: dict[str, int] | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Popup)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.node_types = [t for t in node_types]
        self.usage = usage if usage is not None else {}
        self._done = False
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(4)
        self.hint = QLabel(title, self)
        self.hint.setObjectName("searchHint")
        self.query = QLineEdit(self)
        self.query.setPlaceholderText("search nodes…")
        self.list = QListWidget(self)
        self.list.setWordWrap(True)  # a "no match" message is longer than a node's name
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
        for node_type in rank(self.query.text(), self.node_types, self.usage):
            item = QListWidgetItem(f"{node_type.title}    · {node_type.category}")
            item.setData(Qt.ItemDataRole.UserRole, node_type.type_id)
            item.setToolTip(node_type.description or node_type.type_id)
            self.list.addItem(item)
        if self.list.count():
            self.list.setCurrentRow(0)
        elif self.query.text().strip():
            nearest = nearest_names(self.query.text(), self.node_types)
            item = QListWidgetItem(f"No node matches “{self.query.text().strip()}”."
                                   + (f"\nNearest: {', '.join(nearest)}" if nearest else ""))
            item.setFlags(Qt.ItemFlag.NoItemFlags)  # a message, not a choice
            self.list.addItem(item)

    def results(self) -> list[str]:
        return [t for i in range(self.list.count()) if (t := self.list.item(i).data(Qt.ItemDataRole.UserRole))]

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
        if item is None or self._done or not item.data(Qt.ItemDataRole.UserRole):
            return
        self.choose(item.data(Qt.ItemDataRole.UserRole))

    def choose(self, type_id: str) -> None:
        """Pick ``type_id`` as the user does (tests and scripting call it too)."""
        self._done = True
        self.usage[type_id] = self.usage.get(type_id, 0) + 1  # ranks it higher next time
        self.close()
        self.chosen.emit(type_id)

    def closeEvent(self, event) -> None:  # noqa: N802
        super().closeEvent(event)
        if not self._done:
            self._done = True
            self.dismissed.emit()

    def show_at(self, global_pos: QPoint) -> None:
        """At ``global_pos``, moved back inside the window (or screen) where it would run off."""
        bounds = self.parentWidget().window().geometry() if self.parentWidget() is not None else None
        if bounds is None or bounds.isEmpty():
            screen = self.screen()
            bounds = screen.availableGeometry() if screen is not None else None
        pos = QPoint(global_pos)
        if bounds is not None:
            pos.setX(max(bounds.left(), min(pos.x(), bounds.right() - self.width())))
            pos.setY(max(bounds.top(), min(pos.y(), bounds.bottom() - self.height())))
        self.move(pos)
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
    """What the popup offers: every node type, or, for a dropped wire, the types with a socket
    it fits."""
    types = list(registry.nodes.values())
    if wire is None:
        return types
    return [t for t in types if wire_socket(registry, t, wire) is not None]
