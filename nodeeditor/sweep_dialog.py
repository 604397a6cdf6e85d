"""Run → Sweep…: the editor's face of ``latentgraph sweep``.

Up to three axes (X columns, Y rows, Z one grid each), each a node and a param picked from the
graph and values typed as the CLI's ``--axis`` takes them (``3,5,7``, ``1:8``, ``3.0:7.0:0.5``,
``@prompts.txt``); an output folder (rerunning into it resumes); grid on or off; this machine or
a Ray cluster. The sweep runs through the CLI's own pieces (``cli_sweep.parse_sweep``,
``make_backend``, ``SweepJob``, ``SweepPrinter``) on a snapshot of the graph, off the GUI thread:
a local sweep on the editor's run thread (queued runs wait, so one thing at a time uses the
models and the GPU), a Ray sweep on a thread of its own (the cluster computes). Progress counts
cells; the grid is shown in the image viewer at the end. The axes are stored in the workflow's
metadata (``graphs.sweep.store_in_metadata``), so they come back with the file.
"""

from __future__ import annotations

import importlib.util
import os
import re
import threading
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
)

from graphs import GraphError, safe_io
from graphs.sweep import METADATA_KEY, SweepError, split_spec, store_in_metadata, sweep_from_metadata

from .cli_common import BadInput
from .cli_sweep import SweepJob, SweepPrinter, make_backend, parse_sweep, summary

AXES = ("X (columns)", "Y (rows)", "Z (a grid each)")
RAY_HINT = "Ray is not installed: pip install latentgraph[ray]"
VALUES_HINT = "3,5,7   ·   1:8   ·   3.0:7.0:0.5   ·   @prompts.txt"


def ray_available() -> bool:
    return importlib.util.find_spec("ray") is not None


class _Lines:
    """The stream SweepPrinter writes to: keeps the last line."""

    def __init__(self) -> None:
        self.last = ""

    def write(self, text: str) -> None:
        if text.strip():
            self.last = text.strip()

    def flush(self) -> None:
        pass


class SweepDialog(QDialog):
    progressed = Signal(int, str)  # cells finished so far (skipped, done or failed), the line
    sweep_done = Signal(object)  # {"report", "error", "grid" (PIL), "grid_name"}

    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        self.setWindowTitle("Sweep")
        self.setModal(False)
        self.running = False
        self.report = None
        self.error: str | None = None
        self.grid_image = None
        self.total = 0
        self._job: SweepJob | None = None
        self._cancelled = False
        self._held = False
        layout = QVBoxLayout(self)
        grid = QGridLayout()
        for column, text in enumerate(("Axis", "Node", "Param", "Values")):
            grid.addWidget(QLabel(f"<b>{text}</b>"), 0, column)
        self.rows: list[tuple[QComboBox, QComboBox, QLineEdit]] = []
        for i, name in enumerate(AXES):
            node, param, values = QComboBox(), QComboBox(), QLineEdit()
            node.setMinimumWidth(170)
            param.setMinimumWidth(130)
            values.setMinimumWidth(260)
            values.setPlaceholderText(VALUES_HINT)
            values.setToolTip("a list 3,5,7; a range 1:8 or 3.0:7.0:0.5 (start:stop:step, inclusive); "
                              "or @FILE with one value (a prompt) a line")
            browse = QToolButton()
            browse.setText("…")
            browse.setToolTip("values from a text file, one a line")
            browse.clicked.connect(lambda _c=False, edit=values: self._pick_values_file(edit))
            node.currentIndexChanged.connect(lambda _i, n=node, p=param: self._fill_params(n, p))
            for signal in (node.currentIndexChanged, param.currentIndexChanged):
                signal.connect(lambda *_: self._update_count())
            values.editingFinished.connect(self._update_count)
            grid.addWidget(QLabel(name), i + 1, 0)
            grid.addWidget(node, i + 1, 1)
            grid.addWidget(param, i + 1, 2)
            grid.addWidget(values, i + 1, 3)
            grid.addWidget(browse, i + 1, 4)
            self.rows.append((node, param, values))
        layout.addLayout(grid)
        folder_row = QHBoxLayout()
        self.folder_edit = QLineEdit()
        self.folder_edit.setToolTip("the sweep's folder: images, sweep.json, grids; "
                                    "starting the same sweep into it again resumes")
        choose = QPushButton("Browse…")
        choose.clicked.connect(self._pick_folder)
        folder_row.addWidget(QLabel("Output folder"))
        folder_row.addWidget(self.folder_edit, 1)
        folder_row.addWidget(choose)
        layout.addLayout(folder_row)
        self.grid_box = QCheckBox("Grid image per Z value, with axis labels")
        self.grid_box.setChecked(True)
        layout.addWidget(self.grid_box)
        where_row = QHBoxLayout()
        self.where = QComboBox()
        self.where.addItems(["This machine", "Ray cluster"])
        self.ray_address = QComboBox()
        self.ray_address.setEditable(True)
        self.ray_address.addItems(["local", "auto"])
        self.ray_address.setMinimumWidth(150)
        self.ray_address.setToolTip("local: start a Ray cluster on this machine; auto: join the one "
                                    "'ray start --head' started; or type its address (host:port)")
        self.cpus = QSpinBox()
        self.cpus.setRange(1, 256)
        self.cpus.setPrefix("CPUs per worker: ")
        self.cpus.setToolTip("on CPU-only clusters: cores per Ray worker (one worker per GPU otherwise)")
        self.ray_note = QLabel()
        where_row.addWidget(QLabel("Run on"))
        where_row.addWidget(self.where)
        where_row.addWidget(self.ray_address)
        where_row.addWidget(self.cpus)
        where_row.addWidget(self.ray_note, 1)
        layout.addLayout(where_row)
        if not ray_available():
            item = self.where.model().item(1)
            item.setEnabled(False)
            item.setText("Ray cluster (not installed)")
            item.setToolTip(RAY_HINT)
            self.ray_note.setText(RAY_HINT)
            self.ray_note.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.where.currentIndexChanged.connect(self._where_changed)
        self.count_label = QLabel()
        self.count_label.setWordWrap(True)
        layout.addWidget(self.count_label)
        self.progress = QProgressBar()
        self.progress.setFormat("%v / %m cells")
        layout.addWidget(self.progress)
        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)
        self.status_label.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.status_label.setMinimumHeight(3 * self.fontMetrics().lineSpacing() + 4)  # a summary fits
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.status_label)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.start_button = QPushButton("Start sweep")
        self.start_button.setDefault(True)
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel sweep")
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.setEnabled(False)
        close = QPushButton("Close")
        close.setToolTip("hide the dialog; a running sweep goes on")
        close.clicked.connect(self.hide)
        for button in (self.start_button, self.cancel_button, close):
            buttons.addWidget(button)
        layout.addLayout(buttons)
        self.progressed.connect(self._progressed)
        self.sweep_done.connect(self._finished)
        self._where_changed()
        self.load_from_graph()

    # ----- the form ---------------------------------------------------------------------------
    def load_from_graph(self) -> None:
        """Node lists from the window's graph; the axes saved in its metadata, if any."""
        graph = self.window.graph
        typed = [split_spec(spec) for spec in self.specs()]  # kept when the workflow saved none
        nodes = sorted((n for n in graph.nodes.values() if graph.node_type(n).params),
                       key=lambda n: (n.title.lower(), n.id))
        for node_box, param_box, values in self.rows:
            node_box.blockSignals(True)
            node_box.clear()
            node_box.addItem("(none)", None)
            for node in nodes:
                node_box.addItem(node.title, node.id)
            node_box.blockSignals(False)
            self._fill_params(node_box, param_box)
            values.clear()
        try:
            saved = sweep_from_metadata(graph)
        except SweepError:
            saved = None
        if saved:
            typed = []
            for spec in saved[0][:len(self.rows)]:
                try:
                    typed.append(split_spec(spec))
                except SweepError:
                    continue
            self.grid_box.setChecked(saved[1])
        for i, (title, param, values) in enumerate(typed):
            self.set_axis(i, title, param, values)
        if not self.folder_edit.text():
            stem = re.sub(r"[^\w.-]+", "_", Path(self.window.document.display_name).stem).strip("_") or "sweep"
            self.folder_edit.setText(os.path.join(self.window.output_dir, "sweeps", stem))
        self._update_count()

    def _fill_params(self, node_box: QComboBox, param_box: QComboBox) -> None:
        graph = self.window.graph
        node_id = node_box.currentData()
        param_box.blockSignals(True)
        param_box.clear()
        if node_id in graph.nodes:
            for param in graph.node_type(node_id).params:
                param_box.addItem(param.label or param.name, param.name)
                if graph.param_overridden(node_id, param.name):  # a link drives it: sweeping it does nothing
                    param_box.model().item(param_box.count() - 1).setEnabled(False)
        param_box.blockSignals(False)

    def set_axis(self, index: int, node: str, param: str, values: str) -> None:
        """Axis ``index`` (0 X, 1 Y, 2 Z) over ``node`` (title or id).``param`` = ``values``."""
        node_box, param_box, edit = self.rows[index]
        try:
            node_id = self.window.graph.find_node(node).id
        except GraphError:
            node_id = None
        node_box.setCurrentIndex(max(0, node_box.findData(node_id)))
        param_box.setCurrentIndex(max(0, param_box.findData(param)))
        edit.setText(values)
        self._update_count()

    def specs(self) -> list[str]:
        """The axes as ``--axis`` specs (a node by title, or by id when its title is not unique)."""
        graph = self.window.graph
        specs = []
        for node_box, param_box, edit in self.rows:
            node_id, param, values = node_box.currentData(), param_box.currentData(), edit.text().strip()
            if node_id not in graph.nodes or not param or not values:
                continue
            title = graph.nodes[node_id].title
            unique = sum(1 for n in graph.nodes.values() if n.title == title) == 1 and "=" not in title
            specs.append(f"{title if unique else node_id}.{param}={values}")
        return specs

    def _parse(self, graph):
        specs = self.specs()
        if not specs:
            raise BadInput("pick a node and a param and type values for at least one axis")
        return parse_sweep(graph, specs, self.window.document.base_dir, self.grid_box.isChecked())

    def _update_count(self) -> None:
        try:
            sweep = self._parse(self.window.graph)
        except BadInput as exc:
            self.count_label.setText(f"<span style='color:#e0453a'>{exc}</span>" if self.specs() else str(exc))
            self.start_button.setEnabled(False)
            return
        sizes = " × ".join(str(len(a.values)) for a in sweep.axes)
        cells = f"{len(sweep.cells)} cell{'s' if len(sweep.cells) != 1 else ''}"
        self.count_label.setText(f"{sizes} = {cells}" if len(sweep.axes) > 1 else cells)
        self.start_button.setEnabled(not self.running)

    def _where_changed(self, *_args) -> None:
        ray = self.where.currentIndex() == 1
        self.ray_address.setVisible(ray)
        self.cpus.setVisible(ray)

    def _pick_values_file(self, edit: QLineEdit) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Values, one a line", self.window.document.base_dir or "",
                                              "Text (*.txt);;All files (*)")
        if path:
            edit.setText(f"@{path}")
            self._update_count()

    def _pick_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Sweep output folder", self.folder_edit.text())
        if folder:
            self.folder_edit.setText(folder)

    # ----- running ----------------------------------------------------------------------------
    def start(self) -> bool:
        """Start the sweep on a snapshot of the graph (False, with the reason shown, if refused)."""
        if self.running:
            return False
        window = self.window
        snapshot = window.graph.copy()
        folder = os.path.expanduser(self.folder_edit.text().strip())
        try:
            sweep = self._parse(snapshot)
            if not folder:
                raise BadInput("choose an output folder")
            safe_io.check_output_folder(folder)
        except (BadInput, ValueError) as exc:
            self._say(str(exc), error=True)
            return False
        if window.graph.metadata.get(METADATA_KEY) != sweep.to_metadata():
            store_in_metadata(window.graph, sweep)  # saved with the workflow: the document is modified
            window.undo_stack.resetClean()
        ray = self.ray_address.currentText().strip() or "local" if self.where.currentIndex() == 1 else None
        cpus, models_dir = self.cpus.value(), window.models_dir()
        base_dir = window.document.base_dir or ""
        name = window.document.path or window.document.display_name
        self.running, self._cancelled, self.report, self.error, self.grid_image = True, False, None, None, None
        self.total = len(sweep.cells)
        self.progress.setRange(0, self.total)
        self.progress.setValue(0)
        self.start_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        where = f"Ray ({ray})" if ray else "this machine"
        self._say(f"{self.total} cells on {where} into {folder}")
        window.run_log.log(f"sweep started: {' × '.join(a.address for a in sweep.axes)}, "
                           f"{self.total} cells on {where} into {folder}")
        lines = _Lines()
        printer = SweepPrinter(self.total, False, lines)

        def on_progress(event: str, info: dict[str, Any]) -> None:
            printer(event, info)
            if event == "started":
                self.progressed.emit(printer.count, f"cell {info['cell'].index} started on {info.get('worker')}")
            else:
                self.progressed.emit(printer.count, lines.last)

        def work() -> None:
            outcome: dict[str, Any] = {}
            backend = None
            try:
                if models_dir:  # cells find model files by name as the editor's runs do
                    from nodes.model_folders import ENV_MODELS

                    known = os.environ.get(ENV_MODELS, "").split(os.pathsep)
                    if models_dir not in known:
                        os.environ[ENV_MODELS] = os.pathsep.join(p for p in [models_dir, *known] if p)
                backend = make_backend(ray, cpus)
                self._job = SweepJob(snapshot, sweep, folder, backend, base_dir, name, on_progress)
                if self._cancelled:
                    backend.cancel()
                self._job.run()
                outcome["report"], outcome["error"] = self._job.report, self._job.error
                report = self._job.report
                if report is not None and report.grids:  # decoded here, not on the GUI thread
                    from PIL import Image

                    with Image.open(os.path.join(folder, report.grids[0])) as image:
                        outcome["grid"], outcome["grid_name"] = image.convert("RGB"), report.grids[0]
            except Exception as exc:  # noqa: BLE001 - shown in the dialog
                outcome["error"] = exc
            finally:
                if backend is not None:
                    try:
                        backend.close()
                    except Exception:  # noqa: BLE001 - closing a cluster connection: nothing left to do
                        pass
                self.sweep_done.emit(outcome)

        if ray is None:
            self._held = True
            window.runs.queue.hold(True)  # queued runs wait for the run thread
            window.worker.prepare(work)
        else:
            threading.Thread(target=work, name="latentgraph-sweep", daemon=True).start()
        return True

    def cancel(self) -> None:
        if not self.running:
            return
        self._cancelled = True
        if self._job is not None:
            self._job.cancel()
        self._say("Cancelling… (start the same sweep again to resume)")

    def _progressed(self, count: int, line: str) -> None:
        self.progress.setValue(count)
        if line:
            self._say(line)
            if line.startswith("["):
                self.window.run_log.log(f"sweep {line}")

    def _finished(self, outcome: dict[str, Any]) -> None:
        self.running, self._job = False, None
        if self._held:
            self._held = False
            self.window.runs.queue.hold(False)
        self.cancel_button.setEnabled(False)
        self._update_count()
        report, error = outcome.get("report"), outcome.get("error")
        self.report = report
        if error is not None:
            self.error = str(error)
            self._say(f"Sweep failed: {error}", error=True)
            self.window.run_log.log(f"sweep failed: {error}")
            return
        if report is None or report.cancelled:
            finished = report.skipped + report.done + report.failed if report else 0
            text = f"Sweep cancelled: {finished} of {self.total} cells finished; start it again to resume"
        else:
            self.progress.setValue(self.total)
            text = summary(report)
        self._say(text, error=bool(report and report.failed))
        self.window.run_log.log(f"sweep: {text}")
        self.window.status(text, 10000)
        if outcome.get("grid") is not None:
            self.grid_image = outcome["grid"]
            self.window.image_viewer.show_image(self.grid_image, f"Sweep grid {outcome['grid_name']}", None)
            self.window.docks["image"].raise_()

    def _say(self, text: str, error: bool = False) -> None:
        self.status_label.setStyleSheet("color:#e0453a" if error else "")
        self.status_label.setText(text)

    def shutdown(self) -> None:
        """The window closes: stop a running sweep (it resumes when started again)."""
        self.cancel()


def open_sweep_dialog(window) -> SweepDialog:
    """Show the window's sweep dialog (made once; refilled from the graph when not running)."""
    dialog = getattr(window, "sweep_dialog", None)
    if dialog is None:
        dialog = window.sweep_dialog = SweepDialog(window)
    elif not dialog.running:
        dialog.load_from_graph()
    dialog.show()
    dialog.raise_()
    return dialog
