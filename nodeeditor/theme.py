"""Canvas colours, fonts and sizes in one place."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from PySide6.QtGui import QColor, QFont

from graphs.model import DEFAULT_FRAME_COLOR

BACKGROUND = QColor("#1d1f21")
GRID_MINOR = QColor("#25282b")
GRID_MAJOR = QColor("#303438")
NODE_BODY = QColor("#2b2e33")
NODE_HEADER = QColor("#3b4048")
NODE_BORDER = QColor("#15171a")
NODE_SELECTED = QColor("#f0b429")
TEXT = QColor("#dcdfe4")
TEXT_DIM = QColor("#8d939c")
BYPASS = QColor("#7a4fb0")
MUTE = QColor("#555555")
FAILED = QColor("#e0453a")
BYPASS_TINT = QColor(122, 79, 176, 50)  # over a bypassed node's body
GRIP = QColor("#5a616b")  # the resize grip's lines
OUTLINE = QColor("#101214")  # dark ring around sockets and reroute dots
FIELD_BG = QColor("#1f2226")  # painted param boxes and hollow (optional) sockets
FIELD_BORDER = QColor("#3f444c")
BADGE_TEXT = QColor("#ffffff")
HIGHLIGHT = QColor("#ffffff")  # a selected link, a socket's ring while it would accept a wire
CUT_LINE = QColor("#ff6b6b")
SOCKET_FALLBACK = QColor("#a0a0a0")  # a socket type the registry does not know

# Colours a user can give a node ("Default": the theme's header) or a frame.
COLOR_CHOICES = {"Default": None, "Red": "#7a3434", "Orange": "#7a5530", "Green": "#35623f",
                 "Blue": "#34507a", "Purple": "#5a3d7a", "Grey": "#4a4f57"}
FRAME_DEFAULT_COLOR = DEFAULT_FRAME_COLOR  # the model's, so a reset colour saves as the default
MISSING = QColor("#8a3b2e")  # header of a placeholder: its node type is not installed

BADGE_COLORS = {
    "queued": QColor("#6b7280"),
    "running": QColor("#2f80ed"),
    "cached": QColor("#4b8b6b"),
    "done": QColor("#2e9d5b"),
    "failed": QColor("#e0453a"),
    "skipped": QColor("#8a6d3b"),
    "cancelled": QColor("#b0882e"),
}

NODE_WIDTH = 250.0
HEADER_H = 26.0
SOCKET_ROW_H = 20.0
SOCKET_R = 5.5
PAD = 8.0
LABEL_W = 86.0
# View → UI scale (nodeeditor/ui_scale.py) scales every font() below. The rows have room for text
# up to 125%, so node geometry stays as it is up to there (saved layouts keep their spacing: no
# node grows over its neighbour) and grows with the text past it (GEOMETRY_SCALE); the label
# column widens with its text. The default, 125%, keeps node text legible at the zoom that shows
# a whole bundled workflow on a 1600×1000 screen (about 57%).
UI_SCALE = DEFAULT_UI_SCALE = 1.25  # set_ui_scale(DEFAULT_UI_SCALE) runs at the end of this module
GEOMETRY_SCALE = 1.0
UI_SCALES = (0.9, 1.0, 1.1, 1.25, 1.5)
TEXT_ROOM = 1.25  # the text scale the base geometry has room for
_BASE_SIZES = {"NODE_WIDTH": NODE_WIDTH, "HEADER_H": HEADER_H, "SOCKET_ROW_H": SOCKET_ROW_H,
               "LABEL_W": LABEL_W}
LOD_WIDGETS = 0.55  # below this zoom the inline widgets hide and values are painted
LOD_TEXT = 0.3  # below this, no text at all
ZOOM_MIN, ZOOM_MAX = 0.1, 4.0


def set_ui_scale(scale: float) -> float:
    """Scale node text and node sizes by ``scale`` (clamped to 0.9..1.5); nodes laid out after
    this use it (the window rebuilds its canvas). Returns the scale set."""
    global UI_SCALE, GEOMETRY_SCALE
    UI_SCALE = max(UI_SCALES[0], min(UI_SCALES[-1], float(scale)))
    GEOMETRY_SCALE = max(1.0, UI_SCALE / TEXT_ROOM)
    for name, base in _BASE_SIZES.items():
        globals()[name] = round(base * GEOMETRY_SCALE, 2)
    globals()["LABEL_W"] = round(_BASE_SIZES["LABEL_W"] * min(UI_SCALE, TEXT_ROOM) * GEOMETRY_SCALE, 2)
    _font.cache_clear()
    return UI_SCALE


def scaled(value: float) -> float:
    """A node-geometry size at the UI scale."""
    return value * GEOMETRY_SCALE


def font(size: float = 9.0, bold: bool = False) -> QFont:
    """The canvas font at ``size`` points times the UI scale."""
    return _font(round(size * UI_SCALE, 2), bold)


@lru_cache(maxsize=16)
def _font(size: float, bold: bool) -> QFont:
    f = QFont("DejaVu Sans")
    f.setPointSizeF(size)
    f.setBold(bold)
    return f


def resources_dir() -> Path:
    from nodes.paths import resources_dir as find  # light: no torch, no Qt

    return find()


def stylesheet() -> str:
    folder = resources_dir() / "styles"
    try:
        return (folder / "dark.qss").read_text(encoding="utf-8").replace("@STYLES@", folder.as_posix())
    except OSError:
        return ""


def node_widget_stylesheet() -> str:
    return (
        "QWidget{background:transparent;color:#dcdfe4;font-family:'DejaVu Sans';"
        f"font-size:{8.5 * UI_SCALE:.2f}pt;}}"
        "QLabel{color:#9aa1ab;}"
        "QLineEdit,QSpinBox,QDoubleSpinBox,QComboBox,QPlainTextEdit{background:#1f2226;"
        "border:1px solid #3f444c;border-radius:3px;padding:0 3px;selection-background-color:#2f80ed;}"
        "QLineEdit:disabled,QSpinBox:disabled,QDoubleSpinBox:disabled,QComboBox:disabled,"
        "QPlainTextEdit:disabled{color:#6b7280;background:#26292d;}"
        "QComboBox QAbstractItemView{background:#1f2226;}"
        "QToolButton{background:#3b4048;border:1px solid #4a5059;border-radius:3px;min-width:16px;}"
        "QCheckBox::indicator{width:12px;height:12px;border:1px solid #5a616b;border-radius:2px;"
        "background:#1f2226;}"
        "QCheckBox::indicator:checked{background:#2f80ed;border-color:#2f80ed;}"
    )


set_ui_scale(DEFAULT_UI_SCALE)
