"""The mask editor's canvas (``mask_editor.py`` is the dialog around it): the image scaled to fit,
the mask over it in translucent red, a round brush that paints (white) or erases (black).

The mask is a ``Format_Grayscale8`` QImage at the image's full resolution; numpy views of its
bytes do the brush work. A stroke is the union of the capsules between successive mouse
positions (a pixel's coverage is its distance to the segment, so a fast drag leaves no gap),
combined with the mask by max (paint) or min (erase): overlapping parts of one stroke never
build up, and a soft edge stays soft. The wheel zooms at the cursor, the middle button pans.
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QPointF, QRect, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen
from PySide6.QtWidgets import QWidget

TINTS = {"Red": (255, 48, 48), "Green": (40, 220, 80), "Blue": (50, 120, 255), "White": (255, 255, 255)}
OVERLAY_ALPHA = 0.5  # how opaque a fully masked pixel's tint is
BACKGROUND = QColor("#1a1c1e")
ZOOM_MIN, ZOOM_MAX = 0.02, 32.0


def gray_view(image: QImage) -> np.ndarray:
    """A writable ``[H, W]`` uint8 view of a Grayscale8 image's pixels (rows are padded to 4 bytes)."""
    rows = np.ndarray((image.height(), image.bytesPerLine()), np.uint8, buffer=image.bits())
    return rows[:, :image.width()]


def contrasting_tint(image: QImage, mask: QImage) -> str:
    """The tint (of ``TINTS``) farthest from the colours under the mask (the whole image when the
    mask is empty): a red tint over a red object, the mask painted on it, cannot be seen."""
    rgb = image.convertToFormat(QImage.Format.Format_RGB888)
    rows = np.ndarray((rgb.height(), rgb.bytesPerLine()), np.uint8, buffer=rgb.constBits())
    pixels = rows[:, :rgb.width() * 3].reshape(rgb.height(), rgb.width(), 3).astype(np.float32)
    weight = gray_view(mask).astype(np.float32)
    if weight.sum() == 0:
        weight = np.ones_like(weight)
    mean = (pixels * weight[..., None]).sum(axis=(0, 1)) / weight.sum()
    return max(TINTS, key=lambda name: float(np.linalg.norm(np.array(TINTS[name], np.float32) - mean)))


def segment_coverage(p0: tuple[float, float], p1: tuple[float, float], radius: float, hardness: float,
                     width: int, height: int) -> tuple[int, int, np.ndarray] | None:
    """Coverage 0..255 of a round brush (``radius`` in pixels; ``hardness`` 0..1: the part of the
    radius that is fully on) swept from ``p0`` to ``p1`` over the pixels it reaches, measured at
    pixel centres: ``(left, top, array)``, or None where it misses the image."""
    (x0, y0), (x1, y1) = p0, p1
    reach = radius + 1.0
    left, top = max(0, math.floor(min(x0, x1) - reach)), max(0, math.floor(min(y0, y1) - reach))
    right = min(width, math.ceil(max(x0, x1) + reach) + 1)
    bottom = min(height, math.ceil(max(y0, y1) + reach) + 1)
    if left >= right or top >= bottom:
        return None
    xs = np.arange(left, right, dtype=np.float32)[None, :] + 0.5 - x0
    ys = np.arange(top, bottom, dtype=np.float32)[:, None] + 0.5 - y0
    dx, dy = x1 - x0, y1 - y0
    length2 = dx * dx + dy * dy
    if length2 > 0:
        t = np.clip((xs * dx + ys * dy) / length2, 0.0, 1.0)
        xs, ys = xs - t * dx, ys - t * dy
    distance = np.sqrt(xs * xs + ys * ys)
    soft = max(radius * (1.0 - hardness), 1.0)  # a hard brush keeps a one-pixel smooth edge
    alpha = np.clip((radius + 0.5 - distance) / soft, 0.0, 1.0)
    alpha = alpha * alpha * (3.0 - 2.0 * alpha)  # smoothstep: no visible ring where the falloff starts
    return left, top, (alpha * 255.0 + 0.5).astype(np.uint8)


class MaskCanvas(QWidget):
    """Shows ``image`` with ``mask`` over it and paints strokes into ``mask``. After each stroke it
    emits ``stroke_done(rect, before, after, erased)``: the changed rectangle of the mask (image
    pixels), its contents before and after, and whether it erased, for the dialog's undo stack."""

    stroke_done = Signal(QRect, object, object, bool)
    view_changed = Signal()

    def __init__(self, image: QImage, mask: QImage, parent=None) -> None:
        super().__init__(parent)
        self.image = image
        self.mask = mask
        self.overlay = QImage(image.size(), QImage.Format.Format_ARGB32_Premultiplied)
        self.erasing = False
        self.brush_size = 32  # diameter, image pixels
        self.hardness = 0.8
        self.show_mask = True
        self.tint = TINTS["Red"]  # the colour the mask is shown in
        self._scale, self._offset, self._fitted = 1.0, QPointF(), True
        self._cursor: QPointF | None = None  # widget position of the brush outline
        self._stroke: dict | None = None  # the stroke being drawn: mode, last point, before, rect
        self._last_end: tuple[float, float] | None = None  # where the last stroke ended (Shift+click)
        self._pan_from: QPointF | None = None
        self.setMouseTracking(True)
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMinimumSize(320, 240)
        self.refresh_overlay()

    # ----- the mask -------------------------------------------------------------------
    def values(self) -> np.ndarray:
        """The mask's pixels, ``[H, W]`` uint8 (a view: copy before keeping it)."""
        return gray_view(self.mask)

    def put(self, rect: QRect, values: np.ndarray) -> None:
        """Replace the mask inside ``rect`` (image pixels) with ``values`` (undo, redo, clear)."""
        self.values()[rect.top():rect.bottom() + 1, rect.left():rect.right() + 1] = values
        self.refresh_overlay(rect)

    def refresh_overlay(self, rect: QRect | None = None) -> None:
        """Recolour the tint over ``rect`` (all of it by default) from the mask, and repaint it."""
        rect = (rect or self.mask.rect()).intersected(self.mask.rect())
        if rect.isEmpty():
            return
        rows = slice(rect.top(), rect.bottom() + 1), slice(rect.left(), rect.right() + 1)
        alpha = self.values()[rows].astype(np.uint32) * round(OVERLAY_ALPHA * 255) // 255
        red, green, blue = ((alpha * c) // 255 for c in self.tint)  # premultiplied
        words = np.ndarray((self.overlay.height(), self.overlay.width()), np.uint32,
                           buffer=self.overlay.bits())
        words[rows] = (alpha << 24) | (red << 16) | (green << 8) | blue
        self.update(self.image_rect_to_widget(rect).toAlignedRect().adjusted(-2, -2, 2, 2))

    # ----- view: image pixels <-> widget pixels ----------------------------------------
    def scale(self) -> float:
        return self._scale

    def image_to_widget(self, point: QPointF) -> QPointF:
        return QPointF(point.x() * self._scale + self._offset.x(), point.y() * self._scale + self._offset.y())

    def widget_to_image(self, point: QPointF) -> QPointF:
        return QPointF((point.x() - self._offset.x()) / self._scale, (point.y() - self._offset.y()) / self._scale)

    def image_rect_to_widget(self, rect: QRect | QRectF) -> QRectF:
        rect = QRectF(rect)
        return QRectF(self.image_to_widget(rect.topLeft()), rect.size() * self._scale)

    def fit(self) -> None:
        """Show the whole image, centred (what the canvas does until the user zooms)."""
        w, h = max(1, self.image.width()), max(1, self.image.height())
        margin = 8
        self._scale = max(ZOOM_MIN, min((self.width() - 2 * margin) / w, (self.height() - 2 * margin) / h))
        self._offset = QPointF((self.width() - w * self._scale) / 2, (self.height() - h * self._scale) / 2)
        self._fitted = True
        self.update()
        self.view_changed.emit()

    def zoom_by(self, factor: float, anchor: QPointF | None = None) -> None:
        anchor = anchor if anchor is not None else QPointF(self.width() / 2, self.height() / 2)
        fixed = self.widget_to_image(anchor)
        self._scale = min(ZOOM_MAX, max(ZOOM_MIN, self._scale * factor))
        self._offset = anchor - QPointF(fixed.x() * self._scale, fixed.y() * self._scale)
        self._fitted = False
        self.update()
        self.view_changed.emit()

    def resizeEvent(self, event) -> None:  # noqa: N802
        if self._fitted:
            self.fit()
        super().resizeEvent(event)

    # ----- painting ---------------------------------------------------------------------
    def paintEvent(self, event) -> None:  # noqa: N802
        painter = QPainter(self)
        painter.fillRect(event.rect(), BACKGROUND)
        target = self.image_rect_to_widget(self.image.rect())
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self._scale < 2)
        painter.drawImage(target, self.image)
        if self.show_mask:
            painter.drawImage(target, self.overlay)
        if self._cursor is not None:
            radius = max(self.brush_size * self._scale / 2, 1.5)
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            for color, width in ((QColor(0, 0, 0, 170), 3.0), (QColor(255, 255, 255, 230), 1.2)):
                painter.setPen(QPen(color, width))
                painter.drawEllipse(self._cursor, radius, radius)
            if self.hardness < 1 and radius * self.hardness > 3:  # where the soft edge starts
                painter.setPen(QPen(QColor(255, 255, 255, 140), 1.0, Qt.PenStyle.DashLine))
                painter.drawEllipse(self._cursor, radius * self.hardness, radius * self.hardness)
        painter.end()

    def _update_cursor(self, pos: QPointF | None) -> None:
        radius = self.brush_size * self._scale / 2 + 4
        for point in (self._cursor, pos):
            if point is not None:
                self.update(QRectF(point.x() - radius, point.y() - radius, 2 * radius, 2 * radius).toAlignedRect())
        self._cursor = pos

    def brush_changed(self) -> None:
        """Redraw the outline after the size changed (the dialog's slider or keys)."""
        self._update_cursor(self._cursor)

    # ----- strokes ----------------------------------------------------------------------
    def drawing(self) -> bool:
        """Whether a stroke is being drawn (the mouse button is still down)."""
        return self._stroke is not None

    def begin_stroke(self, point: QPointF, erase: bool | None = None, from_last: bool = False) -> None:
        """Start a stroke at ``point`` (image pixels); ``from_last``: a straight line from where
        the last stroke ended (Shift+click)."""
        self._stroke = {"erase": self.erasing if erase is None else erase, "before": self.values().copy(),
                        "rect": QRect(), "last": (point.x(), point.y())}
        if from_last and self._last_end is not None:
            self._stroke["last"] = self._last_end
        self.extend_stroke(point)

    def extend_stroke(self, point: QPointF) -> None:
        stroke = self._stroke
        if stroke is None:
            return
        start, end = stroke["last"], (point.x(), point.y())
        radius = self.brush_size / 2
        # long jumps in pieces: each piece's bounding box stays near the brush's size
        pieces = max(1, math.ceil(math.hypot(end[0] - start[0], end[1] - start[1]) / max(2 * radius, 64)))
        for i in range(pieces):
            a = (start[0] + (end[0] - start[0]) * i / pieces, start[1] + (end[1] - start[1]) * i / pieces)
            b = (start[0] + (end[0] - start[0]) * (i + 1) / pieces, start[1] + (end[1] - start[1]) * (i + 1) / pieces)
            self._apply(segment_coverage(a, b, radius, self.hardness, self.mask.width(), self.mask.height()))
        stroke["last"] = end

    def _apply(self, coverage) -> None:
        if coverage is None:
            return
        left, top, alpha = coverage
        region = self.values()[top:top + alpha.shape[0], left:left + alpha.shape[1]]
        if self._stroke["erase"]:
            np.minimum(region, 255 - alpha, out=region)
        else:
            np.maximum(region, alpha, out=region)
        rect = QRect(left, top, alpha.shape[1], alpha.shape[0])
        self._stroke["rect"] = self._stroke["rect"].united(rect)
        self.refresh_overlay(rect)

    def end_stroke(self) -> None:
        stroke, self._stroke = self._stroke, None
        if stroke is None:
            return
        self._last_end = stroke["last"]
        rect: QRect = stroke["rect"]
        if rect.isEmpty():
            return
        rows = slice(rect.top(), rect.bottom() + 1), slice(rect.left(), rect.right() + 1)
        before, after = stroke["before"][rows].copy(), self.values()[rows].copy()
        if not np.array_equal(before, after):
            self.stroke_done.emit(rect, before, after, stroke["erase"])

    # ----- mouse ------------------------------------------------------------------------
    def mousePressEvent(self, event) -> None:  # noqa: N802
        button = event.button()
        if button == Qt.MouseButton.MiddleButton:
            self._pan_from = event.position()
            self.setCursor(Qt.CursorShape.ClosedHandCursor)
        elif button in (Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton) and self._stroke is None:
            # the right button paints with the other tool
            erase = self.erasing != (button == Qt.MouseButton.RightButton)
            shift = bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
            self.begin_stroke(self.widget_to_image(event.position()), erase, from_last=shift)
        event.accept()

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        pos = event.position()
        if self._pan_from is not None:
            self._offset += pos - self._pan_from
            self._pan_from = pos
            self._fitted = False
            self.update()
            self.view_changed.emit()
        elif self._stroke is not None:
            self.extend_stroke(self.widget_to_image(pos))
        self._update_cursor(pos)
        event.accept()

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.MiddleButton and self._pan_from is not None:
            self._pan_from = None
            self.setCursor(Qt.CursorShape.CrossCursor)
        elif self._stroke is not None and event.buttons() == Qt.MouseButton.NoButton:
            self.extend_stroke(self.widget_to_image(event.position()))
            self.end_stroke()
        event.accept()

    def wheelEvent(self, event) -> None:  # noqa: N802
        steps = event.angleDelta().y() / 120
        if steps:
            self.zoom_by(1.25 ** steps, event.position())
            self._update_cursor(event.position())
        event.accept()

    def leaveEvent(self, event) -> None:  # noqa: N802
        self._update_cursor(None)
        super().leaveEvent(event)
