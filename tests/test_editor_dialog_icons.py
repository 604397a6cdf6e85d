"""The file dialogs under the app's dark style draw their toolbar icons (back, up, new folder,
list/detail view): a push button's padding once left them no room and they showed blank."""

from __future__ import annotations

from conftest_editor import open_window
from PySide6.QtWidgets import QFileDialog, QToolButton

import nodes  # noqa: F401
from graphs import default_registry


def test_the_file_dialog_toolbar_buttons_show_their_icons(qtbot, tmp_path):
    win = open_window(qtbot, tmp_path, default_registry())
    try:
        dialog = QFileDialog(win, "Open workflow", str(tmp_path))
        dialog.setOption(QFileDialog.Option.DontUseNativeDialog, True)
        dialog.show()
        qtbot.waitExposed(dialog)
        buttons = [b for b in dialog.findChildren(QToolButton) if b.isVisible() and b.isEnabled() and not b.icon().isNull()]
        assert len(buttons) >= 3
        for button in buttons:
            image = button.grab().toImage()
            inner = [image.pixelColor(x, y).lightness() for x in range(3, image.width() - 3)
                     for y in range(3, image.height() - 3)]
            background = sorted(inner)[len(inner) // 2]  # the button's own fill, around the icon
            drawn = sum(1 for value in inner if abs(value - background) > 40)
            assert drawn > 12, (button.objectName(), button.size(), background, min(inner), max(inner))
        dialog.close()
    finally:
        win.worker.shutdown()
