"""How the model routed the layer: gate weights per DAMoE block and expert, and each expert's
spatial/spectral split. Both are small painted grids (rows: blocks, columns: experts)."""
from __future__ import annotations

from qgis.PyQt.QtCore import QRectF, QSize, Qt
from qgis.PyQt.QtGui import QColor, QFontMetrics, QLinearGradient, QPainter, QPalette
from qgis.PyQt.QtWidgets import QSizePolicy, QWidget

LOW_GATE = QColor(247, 244, 249)   # gate 0: the expert is not used
HIGH_GATE = QColor(63, 0, 125)     # gate 1: the expert does all the work
SPATIAL = QColor(27, 158, 119)     # λ_s: spatial (window-attention) branch
SPECTRAL = QColor(217, 95, 2)      # λ_c = 1 − λ_s: spectral (inter-band) branch
ROW_HEIGHT = 20
HEADER_HEIGHT = 16
LEGEND_HEIGHT = 22


def _mix(a: QColor, b: QColor, t: float) -> QColor:
    """The colour a fraction t ∈ [0, 1] of the way from a to b."""
    t = min(max(t, 0.0), 1.0)
    return QColor(*(round(ca + (cb - ca) * t) for ca, cb in
                    zip((a.red(), a.green(), a.blue()), (b.red(), b.green(), b.blue()))))


class _BlockExpertGrid(QWidget):
    """A grid with one row per DAMoE block and one column per expert, plus a legend under it.

    Subclasses paint a cell (``_paint_cell``) and the legend (``_paint_legend``).
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.block_names: list[str] = []
        self.cells: list[list[float]] = []
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)

    def set_cells(self, block_names: list[str], cells: list[list[float]]) -> None:
        """Show ``cells`` (one list of E values per block)."""
        self.block_names, self.cells = list(block_names), [list(row) for row in cells]
        self.setFixedHeight(self.sizeHint().height())
        self.update()

    @property
    def experts(self) -> int:
        return len(self.cells[0]) if self.cells else 0

    def cell_count(self) -> int:
        """Number of cells drawn: blocks × experts."""
        return len(self.cells) * self.experts

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt API)
        return QSize(200, HEADER_HEIGHT + ROW_HEIGHT * len(self.cells) + LEGEND_HEIGHT)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt API)
        """Narrow enough for the dock's default width: the row names and "0.00" in every cell."""
        metrics = QFontMetrics(self.font())
        return QSize(self.label_width() + max(self.experts, 1) * (metrics.horizontalAdvance("0.00") + 4),
                     self.sizeHint().height())

    def label_width(self) -> int:
        """The width of the row-name column."""
        metrics = QFontMetrics(self.font())
        return max((metrics.horizontalAdvance(name) for name in self.block_names), default=0) + 8

    def column_rect(self, col: int) -> QRectF:
        """Where column ``col`` (an expert) is drawn."""
        label_width = self.label_width()
        cell_width = (self.width() - label_width) / max(self.experts, 1)
        return QRectF(label_width + col * cell_width, 0, cell_width, self.height())

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt API)
        if not self.cells:
            return
        painter = QPainter(self)
        painter.setRenderHint(QPainter.Antialiasing)
        label_width = self.label_width()
        cell_width = (self.width() - label_width) / self.experts
        text = self.palette().color(QPalette.WindowText)
        painter.setPen(text)
        for col in range(self.experts):
            painter.drawText(QRectF(label_width + col * cell_width, 0, cell_width, HEADER_HEIGHT),
                             Qt.AlignCenter, f"E{col + 1}")
        for row, name in enumerate(self.block_names):
            top = HEADER_HEIGHT + row * ROW_HEIGHT
            painter.setPen(text)
            painter.drawText(QRectF(0, top, label_width - 4, ROW_HEIGHT), Qt.AlignRight | Qt.AlignVCenter, name)
            for col, value in enumerate(self.cells[row]):
                rect = QRectF(label_width + col * cell_width + 1, top + 1, cell_width - 2, ROW_HEIGHT - 2)
                self._paint_cell(painter, rect, value)
        legend = QRectF(0, HEADER_HEIGHT + ROW_HEIGHT * len(self.cells) + 4, self.width(), LEGEND_HEIGHT - 6)
        self._paint_legend(painter, legend, label_width)
        painter.end()

    def _paint_cell(self, painter: QPainter, rect: QRectF, value: float) -> None:
        raise NotImplementedError

    def _paint_legend(self, painter: QPainter, rect: QRectF, label_width: float) -> None:
        """Paint the legend in ``rect``; the first ``label_width`` pixels line up with the row names."""
        raise NotImplementedError


class RoutingHeatmap(_BlockExpertGrid):
    """Gate weight of every expert in every DAMoE block (0: unused, 1: all the work), as a heatmap."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setToolTip("How much each expert (column) contributes in each DAMoE decoder block (row) "
                        "for this layer. The router picks the top experts from the degradation "
                        "prompt; unselected experts get 0.")

    def _paint_cell(self, painter: QPainter, rect: QRectF, value: float) -> None:
        painter.fillRect(rect, _mix(LOW_GATE, HIGH_GATE, value))
        painter.setPen(Qt.white if value > 0.5 else Qt.black)
        painter.drawText(rect, Qt.AlignCenter, f"{value:.2f}" if value > 0 else "·")

    def _paint_legend(self, painter: QPainter, rect: QRectF, label_width: float) -> None:
        digit = 12
        bar = QRectF(label_width + digit, rect.top() + 3, rect.width() - label_width - 2 * digit, rect.height() - 6)
        gradient = QLinearGradient(bar.topLeft(), bar.topRight())
        gradient.setColorAt(0, LOW_GATE)
        gradient.setColorAt(1, HIGH_GATE)
        painter.fillRect(bar, gradient)
        painter.setPen(self.palette().color(QPalette.WindowText))
        painter.drawRect(bar)
        painter.drawText(QRectF(0, rect.top(), label_width - 4, rect.height()), Qt.AlignRight | Qt.AlignVCenter, "gate")
        painter.drawText(QRectF(label_width, rect.top(), digit, rect.height()), Qt.AlignCenter, "0")
        painter.drawText(QRectF(bar.right(), rect.top(), digit, rect.height()), Qt.AlignCenter, "1")


class ExpertShares(_BlockExpertGrid):
    """Each expert's split between its spatial branch (λ_s) and its spectral branch (λ_c = 1 − λ_s)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setToolTip("Each expert adds λs × (spatial window attention) + λc × (spectral "
                        "inter-band attention); λs is learnt per expert. Left part: spatial "
                        "share λs, right part: spectral share λc = 1 − λs.")

    def _paint_cell(self, painter: QPainter, rect: QRectF, value: float) -> None:
        split = rect.width() * min(max(value, 0.0), 1.0)
        painter.fillRect(QRectF(rect.left(), rect.top(), split, rect.height()), SPATIAL)
        painter.fillRect(QRectF(rect.left() + split, rect.top(), rect.width() - split, rect.height()), SPECTRAL)
        painter.setPen(Qt.white)
        painter.drawText(rect, Qt.AlignCenter, f"{value:.2f}")

    def _paint_legend(self, painter: QPainter, rect: QRectF, label_width: float) -> None:
        half = (rect.width() - label_width) / 2
        metrics = QFontMetrics(self.font())
        for i, (colour, text) in enumerate(((SPATIAL, "spatial λs"), (SPECTRAL, "spectral λc = 1 − λs"))):
            left = label_width + i * half
            painter.fillRect(QRectF(left, rect.top() + 3, 12, rect.height() - 6), colour)
            painter.setPen(self.palette().color(QPalette.WindowText))
            painter.drawText(QRectF(left + 16, rect.top(), half - 16, rect.height()), Qt.AlignLeft | Qt.AlignVCenter,
                             metrics.elidedText(text, Qt.ElideRight, int(half - 16)))
