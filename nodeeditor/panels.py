"""Dock panels: properties, image viewer, latent inspector, run log."""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import QObject, QRunnable, Qt, QThreadPool, Signal
from PySide6.QtGui import QImage, QPainter, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGraphicsPixmapItem,
    QGraphicsScene,
    QGraphicsView,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from graphs import FLAG_NAMES, SetFlags, SetTitle
from graphs import events as ev
from graphs.pngmeta import WORKFLOW_KEY

from .widgets import ParamEditor, make_editor


def pil_to_qimage(image: Any) -> QImage:
    """A deep-copied QImage of a PIL image (any mode)."""
    rgba = image.convert("RGBA")
    data = rgba.tobytes("raw", "RGBA")
    qimage = QImage(data, rgba.width, rgba.height, 4 * rgba.width, QImage.Format.Format_RGBA8888)
    return qimage.copy()


# ----- properties ----------------------------------------------------------------------
class PropertiesPanel(QScrollArea):
    """Title, flags and every param of the selected node (same editors as on the canvas)."""

    def __init__(self, window) -> None:
        super().__init__()
        self.window = window
        self.setWidgetResizable(True)
        self.node_id: str | None = None
        self.editors: dict[str, ParamEditor] = {}
        self.flag_boxes: dict[str, QCheckBox] = {}
        self.title_edit: QLineEdit | None = None
        self.show_node(None)

    @property
    def graph(self):
        return self.window.graph

    def show_node(self, node_id: str | None) -> None:
        self.node_id = node_id if node_id in self.graph.nodes else None
        self.editors, self.flag_boxes, self.title_edit = {}, {}, None
        body = QWidget()
        form = QFormLayout(body)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        if self.node_id is None:
            form.addRow(QLabel("Select one node to edit its properties."))
            self.setWidget(body)
            return
        node = self.graph.nodes[self.node_id]
        node_type = self.graph.node_type(node)
        self.title_edit = QLineEdit(node.title)
        self.title_edit.editingFinished.connect(self._commit_title)
        form.addRow("Title", self.title_edit)
        type_label = QLabel(f"{node_type.title}  ({node_type.type_id} v{node_type.version})")
        type_label.setWordWrap(True)
        form.addRow("Type", type_label)
        if node_type.description:
            desc = QLabel(node_type.description)
            desc.setWordWrap(True)
            form.addRow(desc)
        controller = self.window.controller
        for param in node_type.params:
            editor = make_editor(param, node.params.get(param.name, param.default),
                                 lambda v, name=param.name: controller.set_param(self.node_id, name, v))
            editor.set_enabled(not self.graph.param_overridden(self.node_id, param.name))
            if param.kind == "text":
                editor.widget.setMaximumHeight(120)
            self.editors[param.name] = editor
            form.addRow(param.label or param.name.replace("_", " "), editor.widget)
        flags = QWidget()
        row = QHBoxLayout(flags)
        row.setContentsMargins(0, 0, 0, 0)
        for flag in FLAG_NAMES:
            box = QCheckBox(flag)
            box.setChecked(bool(node.flags.get(flag)))
            box.toggled.connect(lambda checked, f=flag: self._commit_flag(f, checked))
            self.flag_boxes[flag] = box
            row.addWidget(box)
        form.addRow("Flags", flags)
        self.setWidget(body)

    def _commit_title(self) -> None:
        if self.node_id and self.title_edit is not None:
            title = self.title_edit.text().strip()
            if title and title != self.graph.nodes[self.node_id].title:
                self.window.controller.push(SetTitle(self.graph, self.node_id, title))

    def _commit_flag(self, flag: str, checked: bool) -> None:
        if self.node_id and bool(self.graph.nodes[self.node_id].flags.get(flag)) != checked:
            self.window.controller.push(SetFlags(self.graph, [self.node_id], flag, checked))

    def on_model_event(self, event: ev.Event) -> None:
        if self.node_id is None:
            return
        if isinstance(event, ev.NodeRemoved) and event.node.id == self.node_id:
            self.show_node(None)
        elif isinstance(event, ev.Cleared):
            self.show_node(None)
        elif isinstance(event, ev.NodeChanged) and event.node.id == self.node_id:
            node = event.node
            what, key = event.what, event.name
            if what == "params" and key in self.editors:
                self.editors[key].set_value(node.params[key])
            elif what == "title" and self.title_edit is not None and self.title_edit.text() != node.title:
                self.title_edit.setText(node.title)
            elif what == "flags" and key in self.flag_boxes:
                box = self.flag_boxes[key]
                box.blockSignals(True)
                box.setChecked(bool(node.flags.get(key)))
                box.blockSignals(False)
        elif isinstance(event, (ev.LinkAdded, ev.LinkRemoved)):
            link = event.link
            if link.dst_node == self.node_id:  # a param's own socket, or an input overriding it
                for param_name, editor in self.editors.items():
                    editor.set_enabled(not self.graph.param_overridden(self.node_id, param_name))


# ----- image viewer ----------------------------------------------------------------------
class ImageView(QGraphicsView):
    def __init__(self) -> None:
        super().__init__()
        self.setScene(QGraphicsScene(self))
        self.item = QGraphicsPixmapItem()
        self.item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self.scene().addItem(self.item)
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setBackgroundBrush(Qt.GlobalColor.black)

    def wheelEvent(self, event) -> None:  # noqa: N802
        factor = 1.15 ** (event.angleDelta().y() / 120.0)
        zoom = self.transform().m11() * factor
        if 0.05 <= zoom <= 32:
            self.scale(factor, factor)

    def fit(self) -> None:
        if not self.item.pixmap().isNull():
            self.fitInView(self.item, Qt.AspectRatioMode.KeepAspectRatio)

    def zoom_100(self) -> None:
        self.resetTransform()


class ImageViewer(QWidget):
    def __init__(self, window) -> None:
        super().__init__()
        self.window = window
        self.image = None  # PIL image
        self.qimage: QImage | None = None
        self.workflow_text: str | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        bar = QHBoxLayout()
        self.caption = QLabel("No image yet")
        fit = QPushButton("Fit")
        fit.clicked.connect(lambda: self.view.fit())
        one = QPushButton("1:1")
        one.clicked.connect(lambda: self.view.zoom_100())
        self.save_button = QPushButton("Save as…")
        self.save_button.clicked.connect(self.save_as)
        self.save_button.setEnabled(False)
        bar.addWidget(self.caption, 1)
        bar.addWidget(fit)
        bar.addWidget(one)
        bar.addWidget(self.save_button)
        layout.addLayout(bar)
        self.view = ImageView()
        layout.addWidget(self.view, 1)

    def show_image(self, image: Any, caption: str = "", workflow_text: str | None = None) -> None:
        self.image = image
        self.workflow_text = workflow_text
        self.qimage = pil_to_qimage(image)
        self.view.item.setPixmap(QPixmap.fromImage(self.qimage))
        self.view.scene().setSceneRect(self.view.item.boundingRect())
        self.caption.setText(f"{caption}  {image.width}×{image.height}")
        self.save_button.setEnabled(True)
        self.view.fit()

    def clear(self) -> None:
        """Nothing shown (a new, empty workflow made none of the old images)."""
        self.image, self.qimage, self.workflow_text = None, None, None
        self.view.item.setPixmap(QPixmap())
        self.caption.setText("No image yet")
        self.save_button.setEnabled(False)

    def save_as(self, path: str | None = None) -> str | None:
        if self.image is None:
            return None
        if not path:
            path, _ = QFileDialog.getSaveFileName(self, "Save image", "image.png", "PNG (*.png)")
        if not path:
            return None
        from PIL.PngImagePlugin import PngInfo
        info = PngInfo()
        if self.workflow_text:
            info.add_text(WORKFLOW_KEY, self.workflow_text)
        from graphs import safe_io

        image = self.image
        safe_io.write_atomic(path, lambda handle: image.save(handle, format="PNG", pnginfo=info))
        return path


# ----- latent inspector ------------------------------------------------------------------
def _render_trace_fn():
    try:
        from nodes.inspect import render_trace
    except Exception:  # noqa: BLE001 - the editor runs without the node library (no torch)
        return None
    return render_trace


def _inspect_declaration():
    """The Latent inspect node type, whose params (which, view, channel) the panel offers."""
    try:
        from nodes.inspect import LATENT_INSPECT
    except Exception:  # noqa: BLE001 - as above
        return None
    return LATENT_INSPECT


class _RenderDone(QObject):
    finished = Signal(int, object, str)  # generation, PIL image or None, error message


class _RenderJob(QRunnable):
    """A VAE decode for the inspector, off the GUI thread."""

    def __init__(self, render, kwargs: dict[str, Any], generation: int, sink: _RenderDone) -> None:
        super().__init__()
        self.render, self.kwargs, self.generation, self.sink = render, kwargs, generation, sink

    def run(self) -> None:
        try:
            image, error = self.render(**self.kwargs), ""
        except Exception as exc:  # noqa: BLE001 - reported in the panel
            image, error = None, str(exc)
        self.sink.finished.emit(self.generation, image, error)


class LatentInspector(QWidget):
    """Scrub the steps of a UNet denoise trace: latent or x0, latent2rgb / channel / decoded.

    latent2rgb and channel views are cheap and drawn at once; the decoded view runs the VAE
    on a pool thread, and only the newest request is shown."""

    def __init__(self, window) -> None:
        super().__init__()
        self.window = window
        self.traces: dict[str, Any] = {}  # node id -> trace
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        form = QFormLayout()
        self.source = QComboBox()
        self.step = QSlider(Qt.Orientation.Horizontal)
        self.step.setRange(0, 0)
        self.step_label = QLabel("0")
        step_row = QHBoxLayout()
        step_row.addWidget(self.step, 1)
        step_row.addWidget(self.step_label)
        # The same choices and ranges as the node's params: one declaration for both.
        declared = _inspect_declaration()
        self.which = QComboBox()
        self.mode = QComboBox()
        self.channel = QSpinBox()
        self.channel.setRange(0, 0)
        if declared is not None:
            which, view, channel = (declared.param(n) for n in ("which", "view", "channel"))
            self.which.addItems(list(which.choices))
            self.which.setCurrentText(which.default)
            self.mode.addItems(list(view.choices))
            self.mode.setCurrentText(view.default)
            self.channel.setRange(int(channel.min), int(channel.max))
            self.channel.setValue(int(channel.default))
        form.addRow("Node", self.source)
        form.addRow("Step", step_row)
        form.addRow("Show", self.which)
        form.addRow("View", self.mode)
        form.addRow("Channel", self.channel)
        layout.addLayout(form)
        self.picture = QLabel("no trace")
        self.picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.picture.setMinimumHeight(160)
        layout.addWidget(self.picture, 1)
        for widget in (self.step, self.channel):
            widget.valueChanged.connect(self.render)
        for combo in (self.source, self.which, self.mode):
            combo.currentIndexChanged.connect(self._source_changed if combo is self.source else self.render)
        self.last_image = None
        self._generation = 0
        self._render_done = _RenderDone(self)
        self._render_done.finished.connect(self._show_rendered)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)

    def set_traces(self, traces: dict[str, Any], titles: dict[str, str]) -> None:
        self.traces = dict(traces)
        self.source.blockSignals(True)
        self.source.clear()
        for node_id in self.traces:
            self.source.addItem(titles.get(node_id, node_id), node_id)
        self.source.blockSignals(False)
        self._source_changed()

    def current_trace(self):
        node_id = self.source.currentData()
        return self.traces.get(node_id) if node_id else None

    def _source_changed(self, *_args) -> None:
        trace = self.current_trace()
        # frames 0..num_steps: 0 is the starting noise, i the state after step i
        steps = int(getattr(trace, "num_steps", 0) or 0) if trace is not None else 0
        self.step.blockSignals(True)
        self.step.setRange(0, max(0, steps))
        self.step.setValue(max(0, steps))
        self.step.blockSignals(False)
        self.render()

    def render(self, *_args) -> None:
        trace = self.current_trace()
        self.step_label.setText(str(self.step.value()))
        self.channel.setEnabled(self.mode.currentText() == "channel")
        render_trace = _render_trace_fn()
        if trace is None or render_trace is None:
            self.picture.setPixmap(QPixmap())
            self.picture.setText("no trace" if render_trace is not None or trace is None
                                 else "no trace (latent inspector library missing)")
            self.last_image = None
            return
        self._generation += 1
        kwargs = {"trace": trace, "step": self.step.value(), "which": self.which.currentText(),
                  "view": self.mode.currentText(), "channel": self.channel.value()}
        if kwargs["view"] == "decoded":
            self.picture.setText("decoding…")
            self.pool.start(_RenderJob(render_trace, kwargs, self._generation, self._render_done))
            return
        try:
            image, error = render_trace(**kwargs), ""
        except Exception as exc:  # noqa: BLE001 - show the renderer's error instead of crashing
            image, error = None, str(exc)
        self._show_rendered(self._generation, image, error)

    def _show_rendered(self, generation: int, image, error: str) -> None:
        if generation != self._generation:
            return  # a newer request is on its way
        if image is None:
            self.picture.setPixmap(QPixmap())
            self.picture.setText(f"cannot render: {error}")
            self.last_image = None
            return
        self.last_image = image
        pixmap = QPixmap.fromImage(pil_to_qimage(image))
        size = self.picture.size()
        self.picture.setPixmap(pixmap.scaled(max(64, size.width()), max(64, size.height()),
                                             Qt.AspectRatioMode.KeepAspectRatio,
                                             Qt.TransformationMode.FastTransformation))


# ----- run log ---------------------------------------------------------------------------
class RunLog(QPlainTextEdit):
    line_added = Signal(str)

    def __init__(self) -> None:
        super().__init__()
        self.setReadOnly(True)
        self.setMaximumBlockCount(5000)

    def log(self, text: str) -> None:
        line = f"{time.strftime('%H:%M:%S')}  {text}"
        self.appendPlainText(line)
        self.line_added.emit(line)
