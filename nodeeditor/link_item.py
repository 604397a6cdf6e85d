"""A bezier wire from an output socket to an input socket, coloured by its type."""

from __future__ import annotations

from PySide6.QtCore import QLineF, QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPainterPathStroker, QPen
from PySide6.QtWidgets import QGraphicsItem, QGraphicsPathItem

from . import theme


def wire_path(p1: QPointF, p2: QPointF) -> QPainterPath:
    dx = max(abs(p2.x() - p1.x()) * 0.5, 40.0)
    path = QPainterPath(p1)
    path.cubicTo(QPointF(p1.x() + dx, p1.y()), QPointF(p2.x() - dx, p2.y()), p2)
    return path


COSMETIC_BELOW = 0.6  # zoom under which links are drawn with a cosmetic pen
_MARGIN = 6.0  # half the hit width (10) plus a pixel; more than half the widest pen (3.2)


class LinkItem(QGraphicsPathItem):
    def __init__(self, link_id: str, src, dst, color: QColor) -> None:
        super().__init__()
        self.link_id = link_id
        self.src, self.dst = src, dst  # SocketItems
        self.color = QColor(color)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsSelectable)
        self.setAcceptHoverEvents(True)
        self.setZValue(-1)
        self._hover = False
        self.dimmed = False
        self._pen_key: tuple | None = None
        self._pen_cache: QPen | None = None
        self._shape: QPainterPath | None = None
        self._bounds = QRectF()
        self.update_path()

    def set_color(self, color: QColor) -> None:
        if color != self.color:
            self.color = QColor(color)
            self.update()

    def update_path(self) -> None:
        self._shape = None
        self._p1, self._p2 = self.src.scenePos(), self.dst.scenePos()
        path = wire_path(self._p1, self._p2)
        self.prepareGeometryChange()
        # A bezier lies inside its control points: their rect, grown by the hit margin, bounds
        # it without stroking the path (Qt's own boundingRect strokes it through shape()).
        self._bounds = path.controlPointRect().adjusted(-_MARGIN, -_MARGIN, _MARGIN, _MARGIN)
        self.setPath(path)

    def boundingRect(self) -> QRectF:  # noqa: N802
        return self._bounds

    def shape(self) -> QPainterPath:
        if self._shape is None:
            stroker = QPainterPathStroker()
            stroker.setWidth(2 * (_MARGIN - 1))
            self._shape = stroker.createStroke(self.path())
        return self._shape

    def _pen(self, zoom: float) -> QPen:
        # Zoomed out, a cosmetic pen (its width in pixels, at least one): Qt's raster engine
        # draws those with its fast cosmetic stroker instead of filling a stroked outline.
        thin = zoom < COSMETIC_BELOW
        key = (self.color.rgba(), self._hover, self.isSelected(), self.dimmed, thin and round(zoom, 2))
        if self._pen_key != key:
            color = QColor(theme.HIGHLIGHT) if key[2] else QColor(self.color)
            if self.dimmed:
                color.setAlpha(90)
            width = 3.2 if (key[1] or key[2]) else 2.2
            pen = QPen(color, max(1.0, width * zoom) if thin else width,
                       Qt.PenStyle.DashLine if self.dimmed else Qt.PenStyle.SolidLine)
            pen.setCosmetic(thin)
            self._pen_cache, self._pen_key = pen, key
        return self._pen_cache

    def paint(self, painter: QPainter, option, widget=None) -> None:
        # Kept lean: with hundreds of links this runs hundreds of times per frame.
        zoom = painter.worldTransform().m11()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, zoom > 0.45)
        painter.setPen(self._pen(zoom))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        if zoom < 0.3:  # level of detail: a straight wire is indistinguishable this far out
            painter.drawLine(self._p1, self._p2)
        else:
            painter.drawPath(self.path())

    def refresh_dimmed(self) -> None:
        dimmed = self.src.node_item.is_muted() or self.dst.node_item.is_muted()
        if dimmed != self.dimmed:
            self.dimmed = dimmed
            self.update()

    def hoverEnterEvent(self, event) -> None:  # noqa: N802
        self._hover = True
        self.update()

    def hoverLeaveEvent(self, event) -> None:  # noqa: N802
        self._hover = False
        self.update()

    def polyline(self, samples: int = 24) -> list[QPointF]:
        path = self.path()
        return [path.pointAtPercent(i / samples) for i in range(samples + 1)]

    def crosses(self, points: list[QPointF]) -> bool:
        """Whether the polyline ``points`` (scene coordinates) crosses this wire."""
        if len(points) < 2:
            return False
        xs, ys = [p.x() for p in points], [p.y() for p in points]
        cut_box = QRectF(min(xs) - 2, min(ys) - 2, max(xs) - min(xs) + 4, max(ys) - min(ys) + 4)
        if not cut_box.intersects(self.path().boundingRect().adjusted(-2, -2, 2, 2)):
            return False
        mine = self.polyline()
        for a, b in zip(points, points[1:]):
            cut = QLineF(a, b)
            for c, d in zip(mine, mine[1:]):
                kind, _ = cut.intersects(QLineF(c, d))
                if kind == QLineF.IntersectionType.BoundedIntersection:
                    return True
        return False


class DragWire(QGraphicsPathItem):
    """The temporary wire that follows the cursor while dragging from a socket."""

    def __init__(self, color: QColor) -> None:
        super().__init__()
        pen = QPen(QColor(color), 2.4, Qt.PenStyle.DashLine)
        self.setPen(pen)
        self.setZValue(10)

    def set_ends(self, start: QPointF, end: QPointF, from_output: bool) -> None:
        self.setPath(wire_path(start, end) if from_output else wire_path(end, start))
