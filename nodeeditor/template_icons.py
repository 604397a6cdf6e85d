"""A small picture of a workflow for menus (File → Templates): its nodes as boxes where they sit,
drawn from the file's positions, so each template shows its shape at a glance."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap

WIDTH, HEIGHT = 96, 60
NODE_W, NODE_H = 300.0, 160.0  # a typical node's size, for the file holds only positions


def workflow_icon(path: str | Path) -> QIcon:
    """The workflow's node layout in a WIDTH x HEIGHT icon; an empty icon when the file is unreadable."""
    from graphs import workflow

    try:
        data = workflow.read_json(path)
        positions = [tuple(n["pos"]) for n in data.get("nodes", []) if isinstance(n, dict)]
    except (workflow.WorkflowError, TypeError, KeyError, AttributeError):
        return QIcon()
    if not positions:
        return QIcon()
    left, top = min(x for x, _ in positions), min(y for _, y in positions)
    right, bottom = max(x for x, _ in positions) + NODE_W, max(y for _, y in positions) + NODE_H
    scale = min((WIDTH - 4) / (right - left), (HEIGHT - 4) / (bottom - top))
    pixmap = QPixmap(WIDTH, HEIGHT)
    pixmap.fill(QColor("#1b1d20"))
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor("#6b7380"))
    for x, y in positions:
        painter.drawRoundedRect(QRectF(2 + (x - left) * scale, 2 + (y - top) * scale,
                                       max(2.0, NODE_W * scale * 0.9), max(2.0, NODE_H * scale * 0.8)), 1.5, 1.5)
    painter.end()
    return QIcon(pixmap)
