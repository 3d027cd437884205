"""Small widgets that let the dock fit a narrow panel (QGIS docks it 311 px wide)."""
from __future__ import annotations

from qgis.PyQt.QtCore import QSize, Qt
from qgis.PyQt.QtGui import QPainter
from qgis.PyQt.QtWidgets import QLabel, QSizePolicy, QWidget


class ElidedLabel(QLabel):
    """A one-line label that shortens its text with "…" when narrow; the full text is its tooltip
    unless one is set. Rich text is not supported (the text is drawn as plain text)."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(text, parent)
        self.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt API)
        metrics = self.fontMetrics()
        return QSize(metrics.horizontalAdvance("…") * 3, metrics.height())

    def is_elided(self) -> bool:
        """Whether the text is shortened at the current width."""
        return self.fontMetrics().horizontalAdvance(self.text()) > self.contentsRect().width()

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt API)
        painter = QPainter(self)
        rect = self.contentsRect()
        painter.setPen(self.palette().color(self.foregroundRole()))
        painter.drawText(rect, int(self.alignment()) | Qt.TextSingleLine,
                         self.fontMetrics().elidedText(self.text(), Qt.ElideRight, rect.width()))
        painter.end()
