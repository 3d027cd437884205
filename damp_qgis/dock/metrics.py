"""The six degradation-prompt metrics, each against the ranges seen on clean and degraded training data."""
from __future__ import annotations

from qgis.PyQt.QtCore import QPointF, QRectF, QSize, Qt
from qgis.PyQt.QtGui import QColor, QFont, QPainter, QPalette, QPen
from qgis.PyQt.QtWidgets import QGridLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from .widgets import ElidedLabel

CLEAN_COLOUR = QColor(77, 175, 74)      # ranges seen on clean training crops
DEGRADED_COLOUR = QColor(228, 26, 28)   # ranges seen on degraded training crops
VALUE_FORMAT = "{:.4g}"
WIDEST_VALUE = "-0.0000e-00"  # the value column is always this wide, so no value is ever cut

Range = tuple[float, float]


class RangeBar(QWidget):
    """A value drawn as a tick over two strips: the clean range (top) and the degraded range (bottom).

    The axis spans the value and both ranges with a 5 % margin. Without ranges only the value
    is known: the bar draws nothing and the number beside it stands alone.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.value: float | None = None
        self.clean: Range | None = None
        self.degraded: Range | None = None
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt API)
        return QSize(160, 14)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt API)
        return QSize(40, 14)

    def set_value(self, value: float, clean: Range | None, degraded: Range | None) -> None:
        """Show ``value`` against the clean and degraded ranges (either may be None)."""
        self.value, self.clean, self.degraded = value, clean, degraded
        parts = [f"this layer {VALUE_FORMAT.format(value)}"]
        for label, span in (("clean", clean), ("degraded", degraded)):
            if span is not None:
                low, high = (VALUE_FORMAT.format(v) for v in span)
                parts.append(f"{label} training data {low} – {high}")
        self.setToolTip("\n".join(parts))
        self.update()

    def _axis(self) -> tuple[float, float]:
        points = [self.value] + [v for span in (self.clean, self.degraded) if span for v in span]
        low, high = min(points), max(points)
        margin = 0.05 * (high - low) or 0.05 * abs(high) or 0.05
        return low - margin, high + margin

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt API)
        if self.value is None or (self.clean is None and self.degraded is None):
            return
        low, high = self._axis()
        width, height = self.width(), self.height()

        def x(v: float) -> float:
            return (v - low) / (high - low) * (width - 1)

        painter = QPainter(self)
        painter.setRenderHint(QPainter.Antialiasing)
        painter.fillRect(QRectF(0, 2, width, height - 4), self.palette().color(QPalette.AlternateBase))
        strip = (height - 4) / 2
        for row, (span, colour) in enumerate(((self.clean, CLEAN_COLOUR), (self.degraded, DEGRADED_COLOUR))):
            if span is not None:
                fill = QColor(colour)
                fill.setAlpha(170)
                painter.fillRect(QRectF(x(span[0]), 2 + row * strip, max(2.0, x(span[1]) - x(span[0])), strip), fill)
        painter.setPen(QPen(self.palette().color(QPalette.WindowText), 2))
        tick = x(self.value)
        painter.drawLine(QPointF(tick, 0), QPointF(tick, height))
        painter.end()


class MetricsPanel(QWidget):
    """Six rows, one per DP metric: its short name and title (shortened with "…" in a narrow dock)
    and value, then its range bar; tooltips explain each.

    The rows are built on the first ``show_metrics`` from ``damp_engine.names``' names, titles
    and meanings (imported then, so that opening QGIS never loads torch).
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._grid = QGridLayout()
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setVerticalSpacing(1)
        self._grid.setColumnStretch(0, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(self._grid)
        self._legend = _legend()
        layout.addWidget(self._legend)
        self._values: dict[str, QLabel] = {}
        self._bars: dict[str, RangeBar] = {}
        self.shown: dict[str, float] = {}

    def _build_rows(self) -> None:
        from damp_engine import METRIC_MEANINGS, METRIC_NAMES, METRIC_TITLES

        mono = QFont("monospace")
        mono.setStyleHint(QFont.TypeWriter)
        for row, name in enumerate(METRIC_NAMES):
            tip = f"<b>{METRIC_TITLES[name]} ({name.upper()})</b><br>{METRIC_MEANINGS[name]}"
            title = ElidedLabel(f"{name.upper()}  {METRIC_TITLES[name]}")
            value = QLabel()
            value.setFont(mono)
            value.setAlignment(Qt.AlignRight | Qt.AlignVCenter)
            value.setMinimumWidth(value.fontMetrics().horizontalAdvance(WIDEST_VALUE))
            bar = RangeBar()
            for widget in (title, value):
                widget.setToolTip(tip)
            self._grid.addWidget(title, 2 * row, 0)
            self._grid.addWidget(value, 2 * row, 1)
            self._grid.addWidget(bar, 2 * row + 1, 0, 1, 2)
            self._values[name], self._bars[name] = value, bar

    def show_metrics(self, metrics: dict[str, float], ranges: dict[str, dict[str, Range]] | None) -> None:
        """Show the metric values, with bars against ``ranges`` ({"clean"|"degraded": {name: range}})."""
        if not self._values:
            self._build_rows()
        for name, value in metrics.items():
            self._values[name].setText(VALUE_FORMAT.format(value))
            clean, degraded = (ranges["clean"][name], ranges["degraded"][name]) if ranges else (None, None)
            self._bars[name].set_value(value, clean, degraded)
            self._bars[name].setVisible(ranges is not None)
        self._legend.setVisible(ranges is not None)
        self.shown = dict(metrics)

    def value_text(self, name: str) -> str:
        """The text shown as the value of metric ``name``."""
        return self._values[name].text()

    def bar(self, name: str) -> RangeBar:
        """The range bar of metric ``name``."""
        return self._bars[name]


def _legend() -> QLabel:
    """One wrapping line explaining the bars' colours."""
    items = [f"<span style='color:{colour.name()}'>■</span>&nbsp;{text}"
             for colour, text in ((CLEAN_COLOUR, "clean training data"), (DEGRADED_COLOUR, "degraded"))]
    legend = QLabel(" &nbsp; ".join(items + ["|&nbsp;this&nbsp;layer"]))
    legend.setTextFormat(Qt.RichText)
    legend.setWordWrap(True)
    legend.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
    legend.setStyleSheet("color: gray; font-size: small;")
    return legend
