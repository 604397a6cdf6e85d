"""Help → Plugins: which node plugins were found, what each added, and why one was skipped."""

from __future__ import annotations

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QTableWidget, QTableWidgetItem, QVBoxLayout

from graphs import Registry
from graphs.plugins import GROUP

COLUMNS = ("Plugin", "Package", "Version", "Status", "Node types / reason")


def plugin_rows(registry: Registry) -> list[tuple[str, str, str, str, str]]:
    """One row per entry point found, in load order."""
    return [(r.name, r.package, r.version, r.status,
             ", ".join(r.type_ids) if r.loaded else r.reason) for r in registry.plugins]


class PluginsDialog(QDialog):
    def __init__(self, registry: Registry, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Plugins")
        self.resize(720, 320)
        layout = QVBoxLayout(self)
        rows = plugin_rows(registry)
        note = (f"{len(rows)} plugin(s) found in entry-point group {GROUP!r}." if rows else
                f"No plugins installed (entry-point group {GROUP!r}).")
        layout.addWidget(QLabel(note))
        self.table = QTableWidget(len(rows), len(COLUMNS), self)
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        for r, row in enumerate(rows):
            for c, text in enumerate(row):
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                self.table.setItem(r, c, item)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.resizeColumnsToContents()
        layout.addWidget(self.table, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, parent=self)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
