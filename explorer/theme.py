"""One dark theme for Qt widgets and pyqtgraph plots, so the two look like one program."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtGui import QColor, QFont, QPalette
from PySide6.QtWidgets import QApplication

from trainer.data import imaging

BG = "#1b1d23"  # plot and image backgrounds
PANEL = "#23262e"  # widget backgrounds
BASE = "#16181d"  # text fields
TEXT = "#e3e6ed"
MUTED = "#9aa1b1"
ACCENT = "#4f9dff"
GRID = "#3a3f4b"
WARN = "#f0b429"
ERROR = "#ff6b6b"
OK = "#5ad17f"

# Curves: train -ELBO, reconstruction, KL, test -ELBO
CURVE = {"nelbo": "#4f9dff", "recon": "#b48cff", "kl": "#ffb454", "test": "#5ad17f"}

CLASS_COLOURS = imaging.CLASS_COLOURS  # one palette for the window and the pictures


def class_colour(k: int) -> QColor:
    if k < len(CLASS_COLOURS):
        return QColor(CLASS_COLOURS[k])
    return pg.intColor(k, hues=max(12, k + 1), values=1, maxValue=230, minValue=150)


STYLE = f"""
QWidget {{ color: {TEXT}; }}
QMainWindow, QDialog {{ background: {PANEL}; }}
QGroupBox {{
    border: 1px solid {GRID}; border-radius: 6px; margin-top: 14px; padding: 8px 6px 6px 6px;
    font-weight: 600;
}}
QGroupBox::title {{ subcontrol-origin: margin; left: 10px; padding: 0 4px; color: {MUTED}; }}
QTabWidget::pane {{ border: 1px solid {GRID}; border-radius: 4px; top: -1px; }}
QTabBar::tab {{
    background: {PANEL}; color: {MUTED}; padding: 6px 8px; border: 1px solid {GRID};
    border-bottom: none; border-top-left-radius: 4px; border-top-right-radius: 4px;
    margin-right: 2px;
}}
QTabBar::tab:selected {{ background: {BG}; color: {TEXT}; border-bottom: 2px solid {ACCENT}; }}
QPushButton {{
    background: #2f3440; border: 1px solid #414755; border-radius: 5px; padding: 5px 12px;
}}
QPushButton:hover {{ background: #394050; }}
QPushButton:pressed {{ background: #252a33; }}
QPushButton:disabled {{ color: #6b7180; background: #262a32; border-color: #30343d; }}
QPushButton#primary {{ background: #2d6fd6; border-color: #3b7fe6; font-weight: 600; }}
QPushButton#primary:hover {{ background: #3a7ce3; }}
QPushButton#primary:disabled {{ background: #262a32; color: #6b7180; border-color: #30343d; }}
QLineEdit, QSpinBox, QDoubleSpinBox, QComboBox {{
    background: {BASE}; border: 1px solid #3a3f4b; border-radius: 4px; padding: 3px 5px;
    selection-background-color: {ACCENT};
}}
QLineEdit:focus, QSpinBox:focus, QDoubleSpinBox:focus, QComboBox:focus {{
    border-color: {ACCENT};
}}
QComboBox QAbstractItemView {{ background: {BASE}; selection-background-color: #2d6fd6; }}
QProgressBar {{
    background: {BASE}; border: 1px solid {GRID}; border-radius: 4px; text-align: center;
    min-height: 18px;
}}
QProgressBar::chunk {{ background: #2d6fd6; border-radius: 3px; }}
QScrollArea {{ border: none; }}
QSplitter::handle {{ background: {GRID}; }}
QSplitter::handle:horizontal {{ width: 2px; }}
QSplitter::handle:vertical {{ height: 2px; }}
QStatusBar {{ color: {MUTED}; }}
QToolTip {{ background: #30343f; color: {TEXT}; border: 1px solid {GRID}; padding: 4px; }}
QSlider::groove:horizontal {{ height: 4px; background: #3a3f4b; border-radius: 2px; }}
QSlider::sub-page:horizontal {{ background: #2d6fd6; border-radius: 2px; }}
QSlider::handle:horizontal {{
    background: {TEXT}; width: 12px; margin: -5px 0; border-radius: 6px;
}}
QLabel#muted {{ color: {MUTED}; }}
QLabel#warning {{ color: {WARN}; }}
QLabel#heading {{ font-weight: 600; color: {TEXT}; }}
QFrame#banner {{ border-radius: 5px; }}
QMenuBar {{ background: {PANEL}; }}
QMenuBar::item:selected {{ background: #394050; }}
QMenu {{ background: {PANEL}; border: 1px solid {GRID}; }}
QMenu::item:selected {{ background: #2d6fd6; }}
QMenu::item:disabled {{ color: #6b7180; }}
QCheckBox::indicator {{
    width: 13px; height: 13px; border: 1px solid #5a6172; border-radius: 3px; background: {BASE};
}}
QCheckBox::indicator:checked {{ background: #2d6fd6; border-color: #4f9dff; }}
"""


def apply(app: QApplication) -> None:
    """Fusion style, a dark palette, the stylesheet and matching pyqtgraph defaults."""
    app.setStyle("Fusion")
    pal = QPalette()
    for role, colour in [
        (QPalette.Window, PANEL),
        (QPalette.WindowText, TEXT),
        (QPalette.Base, BASE),
        (QPalette.AlternateBase, PANEL),
        (QPalette.Text, TEXT),
        (QPalette.Button, "#2f3440"),
        (QPalette.ButtonText, TEXT),
        (QPalette.Highlight, "#2d6fd6"),
        (QPalette.HighlightedText, "#ffffff"),
        (QPalette.ToolTipBase, "#30343f"),
        (QPalette.ToolTipText, TEXT),
        (QPalette.PlaceholderText, MUTED),
    ]:
        pal.setColor(role, QColor(colour))
    pal.setColor(QPalette.Disabled, QPalette.Text, QColor("#6b7180"))
    pal.setColor(QPalette.Disabled, QPalette.WindowText, QColor("#6b7180"))
    pal.setColor(QPalette.Disabled, QPalette.ButtonText, QColor("#6b7180"))
    app.setPalette(pal)
    font = app.font()
    if font.pointSizeF() < 10:
        font.setPointSizeF(10)
    app.setFont(font)
    app.setStyleSheet(STYLE)
    pg.setConfigOptions(
        background=BG, foreground=MUTED, antialias=False, imageAxisOrder="row-major"
    )


def small_font(delta: float = -1.0) -> QFont:
    f = QApplication.font()
    f.setPointSizeF(max(7.0, f.pointSizeF() + delta))
    return f
