"""Painting a node: body, header, badge, rows, thumbnail, sockets. Reads the item's
layout (``item.layout``) and state; decides nothing about geometry. Colours come from
``theme``."""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFontMetrics, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QStyle

from . import theme
from .widgets import display_value

RADIUS = 6.0
TITLE_FONT = (9.5, True)


def paint_node(item, painter: QPainter, option) -> None:
    node = item.node
    lay = item.layout
    lod = option.levelOfDetailFromTransform(painter.worldTransform())
    rect = item.body_rect()
    selected = bool(option.state & QStyle.StateFlag.State_Selected)
    failed = item.badge is not None and item.badge[0] == "failed"
    collapsed = bool(node.flags.get("collapsed"))
    header_color = QColor(node.color) if node.color else theme.NODE_HEADER
    if node.flags.get("bypass"):
        header_color = theme.BYPASS
    missing = item.missing_label()
    if missing:
        header_color = theme.MISSING
    if lod < theme.LOD_TEXT:  # far out: flat boxes only
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        painter.fillRect(rect, theme.NODE_BODY)
        painter.fillRect(QRectF(0, 0, rect.width(), theme.HEADER_H), header_color)
        if selected or failed:
            painter.setPen(QPen(theme.FAILED if failed else theme.NODE_SELECTED, 3 / max(lod, 0.05)))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRect(rect)
        return
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    body = QPainterPath()
    body.addRoundedRect(rect, RADIUS, RADIUS)
    painter.fillPath(body, theme.NODE_BODY)
    header = QPainterPath()
    header.addRoundedRect(QRectF(0, 0, rect.width(), theme.HEADER_H), RADIUS, RADIUS)
    if not collapsed:
        header.addRect(QRectF(0, theme.HEADER_H - RADIUS, rect.width(), RADIUS))
    painter.fillPath(header.simplified(), header_color)
    if node.flags.get("bypass"):
        painter.fillPath(body, theme.BYPASS_TINT)
    painter.setPen(theme.TEXT)
    painter.setFont(theme.font(*TITLE_FONT))
    painter.drawText(QRectF(9, 0, 14, theme.HEADER_H), Qt.AlignmentFlag.AlignVCenter,
                     "▸" if collapsed else "▾")
    badge_w = _paint_badge(item, painter) if item.badge else 0.0
    metrics = QFontMetrics(theme.font(*TITLE_FONT))
    title = metrics.elidedText(missing or node.title, Qt.TextElideMode.ElideRight, int(rect.width() - 34 - badge_w))
    painter.drawText(QRectF(25, 0, rect.width() - 34 - badge_w, theme.HEADER_H),
                     Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, title)
    # Only what is exposed: a tall node (a hub with 200 inputs) moving at the edge of the
    # view is repainted in strips, and each strip needs a few of its rows, not all of them.
    exposed = option.exposedRect
    top, bottom = exposed.top() - theme.SOCKET_ROW_H, exposed.bottom() + theme.SOCKET_ROW_H
    if not collapsed:
        _paint_rows(item, painter, lod, top, bottom)
        if item.image is not None and lay.image_rect is not None:
            painter.drawImage(lay.image_rect, item.scaled_image())
        g = lay.grip_rect()
        painter.setPen(QPen(theme.GRIP, 1.2))
        for i in (4, 8):
            painter.drawLine(QPointF(g.right() - i, g.bottom() - 2), QPointF(g.right() - 2, g.bottom() - i))
    border = theme.FAILED if failed else (theme.NODE_SELECTED if selected else theme.NODE_BORDER)
    painter.setPen(QPen(border, 2.2 if (selected or failed) else 1.0))
    painter.setBrush(Qt.BrushStyle.NoBrush)
    painter.drawPath(body)
    paint_sockets(item, painter, top, bottom)


def paint_reroute(item, painter: QPainter, option) -> None:
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    selected = bool(option.state & QStyle.StateFlag.State_Selected)
    size = item.layout.width
    painter.setPen(QPen(theme.NODE_SELECTED if selected else theme.OUTLINE, 2 if selected else 1))
    painter.setBrush(QColor(item.outputs["out"].color))
    r = size / 2 - 2
    painter.drawEllipse(QPointF(size / 2, size / 2), r, r)
    paint_sockets(item, painter)


def paint_sockets(item, painter: QPainter, top: float = -1e12, bottom: float = 1e12) -> None:
    for sockets in (item.inputs, item.outputs):
        for sock in sockets.values():
            if top <= sock.y() <= bottom:
                sock.paint(painter)


def _paint_badge(item, painter: QPainter) -> float:
    state, text = item.badge
    painter.setFont(theme.font(8))
    metrics = QFontMetrics(theme.font(8))
    w = metrics.horizontalAdvance(text) + 12
    r = QRectF(item.layout.width - w - 6, 5, w, theme.HEADER_H - 10)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QBrush(theme.BADGE_COLORS.get(state, theme.TEXT_DIM)))
    painter.drawRoundedRect(r, 7, 7)
    painter.setPen(theme.BADGE_TEXT)
    painter.drawText(r, Qt.AlignmentFlag.AlignCenter, text)
    painter.setFont(theme.font(*TITLE_FONT))
    return w + 6


def _paint_rows(item, painter: QPainter, lod: float, top: float, bottom: float) -> None:
    node_type, width = item.node_type, item.layout.width
    row_h = theme.SOCKET_ROW_H
    painter.setFont(theme.font(8.5))
    painter.setPen(theme.TEXT_DIM)
    y = theme.HEADER_H + 4
    left = Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft
    first = max(0, int((top - y) // row_h))
    last = int((bottom - y) // row_h) + 1
    for i, socket in enumerate(node_type.inputs[first:last], first):
        painter.drawText(QRectF(12, y + i * row_h, width / 2, row_h), left, socket.label or socket.name)
    for i, socket in enumerate(node_type.outputs[first:last], first):
        painter.drawText(QRectF(width / 2 - 12, y + i * row_h, width / 2, row_h),
                         Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight,
                         socket.label or socket.name)
    if item.proxy is not None and item.proxy.isVisible():
        return  # the live widgets draw the params
    params = item.node.params
    for row in item.layout.rows:
        param, py, h, companion = row.param, row.y, row.height, row.companion
        if py + h < top or py > bottom:
            continue
        painter.setPen(theme.TEXT_DIM)
        painter.drawText(QRectF(theme.PAD, py, theme.LABEL_W, min(h, theme.scaled(22))), left,
                         param.label or param.name.replace("_", " "))
        box = QRectF(theme.PAD + theme.LABEL_W + 4, py + 1, width - 2 * theme.PAD - theme.LABEL_W - 4, h - 2)
        if lod >= 0.45:
            painter.setPen(QPen(theme.FIELD_BORDER, 1))
            painter.setBrush(theme.FIELD_BG)
            painter.drawRoundedRect(box, 3, 3)
        linked = item.graph.param_overridden(item.node_id, param.name)
        value = "(linked)" if linked else display_value(param, params.get(param.name, param.default))
        if companion is not None and not linked:
            value += f"  [{params.get(companion.name, companion.default)}]"
        painter.setPen(theme.TEXT_DIM if linked else theme.TEXT)
        flags = Qt.AlignmentFlag.AlignLeft | (Qt.AlignmentFlag.AlignTop if param.kind == "text"
                                              else Qt.AlignmentFlag.AlignVCenter)
        if param.kind == "text" and not linked:
            flags |= Qt.TextFlag.TextWordWrap
            value = str(params.get(param.name, param.default))[:200]
        painter.drawText(box.adjusted(4, 2, -4, -2), flags, value)
