"""The dock's spectral profile: click a pixel on the map, see its spectrum in the active layer and in
the layers made from it (degraded, restored), against wavelength, lost and bad bands marked.

An analyst judges a restoration by its spectra: a denoised spectrum should follow the clean one
without its jitter, a rebuilt band should sit where its neighbours say. Which layers belong
together: those whose names share the root the outputs are named after ("scene",
"scene — degraded (noise)", "scene — degraded (noise) — restored"), and DAMP products (rasters
carrying ``DAMP_DEGRADATION`` or ``DAMP_MODEL``) on the active layer's grid. Bad bands come from
the band items ``bbl`` (0: bad, as ENVI and EnMAP write them), lost bands from a band-loss
record; both are shaded behind the curves. Drawn with QPainter only.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
from qgis.core import (QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsCsException, QgsMapLayer,
                       QgsPointXY, QgsProject, QgsRasterLayer)
from qgis.gui import QgsMapCanvas, QgsMapToolEmitPoint, QgsVertexMarker
from qgis.PyQt.QtCore import QPointF, QRectF, QSize, Qt, pyqtSignal
from qgis.PyQt.QtGui import QColor, QFontMetrics, QPainter, QPainterPath, QPalette, QPen
from qgis.PyQt.QtWidgets import QHBoxLayout, QSizePolicy, QToolButton, QVBoxLayout, QWidget

from ..outputs import SEPARATOR
from .widgets import ElidedLabel

SERIES_COLOURS = (QColor(20, 20, 20), QColor(228, 26, 28), QColor(55, 126, 184), QColor(77, 175, 74),
                  QColor(152, 78, 163), QColor(166, 86, 40))  # the active layer first, in black
BAD_BAND_COLOUR = QColor(150, 150, 150, 110)  # bbl = 0: bands the sensor marks unusable
LOST_BAND_COLOUR = QColor(255, 127, 0, 110)   # bands a band-loss degradation zeroed
DAMP_KEYS = ("DAMP_DEGRADATION", "DAMP_MODEL")
MAX_SERIES = len(SERIES_COLOURS)


@dataclass(frozen=True)
class Spectrum:
    """One pixel's spectrum in one layer.

    values: physical values per band, NaN where the pixel is nodata; wavelengths in nm (None if
    the raster has none); bad_bands and lost_bands: 0-based band numbers.
    """

    layer_id: str
    name: str
    values: np.ndarray
    wavelengths: tuple[float, ...] | None
    bad_bands: tuple[int, ...] = ()
    lost_bands: tuple[int, ...] = ()


# ------------------------------------------------------------------------------- which layers, which pixel

def root_name(name: str) -> str:
    """"scene — degraded (noise) — restored" → "scene"."""
    return name.split(SEPARATOR)[0]


def _damp_metadata(layer: QgsRasterLayer) -> dict:
    from damp_engine import DampInputError, open_raster

    try:
        metadata = open_raster(layer.source()).metadata
    except DampInputError:
        return {}
    return {key: metadata[key] for key in DAMP_KEYS if key in metadata}


def _same_grid(a: QgsRasterLayer, b: QgsRasterLayer) -> bool:
    return (a.width(), a.height(), a.crs()) == (b.width(), b.height(), b.crs()) and a.extent() == b.extent()


def related_layers(active: QgsRasterLayer, layers) -> list[QgsRasterLayer]:
    """The raster layers among ``layers`` that belong with ``active``: same root name, or a DAMP
    product on its grid. Sorted by name (so a layer comes before what was made from it)."""
    related, active_is_damp = [], None
    for layer in layers:
        if layer is active or not isinstance(layer, QgsRasterLayer) or not layer.isValid() \
                or layer.providerType() != "gdal":
            continue
        if root_name(layer.name()) == root_name(active.name()):
            related.append(layer)
        elif _same_grid(layer, active):
            if active_is_damp is None:
                active_is_damp = bool(_damp_metadata(active))
            if active_is_damp or _damp_metadata(layer):
                related.append(layer)
    return sorted(related, key=lambda layer: layer.name())


def pixel_at(layer: QgsRasterLayer, point: QgsPointXY, crs: QgsCoordinateReferenceSystem) -> tuple[int, int] | None:
    """The (column, row) of ``layer`` under ``point`` (in ``crs``), None outside the layer."""
    if crs.isValid() and crs != layer.crs():
        try:
            point = QgsCoordinateTransform(crs, layer.crs(), QgsProject.instance()).transform(point)
        except QgsCsException:
            return None
    extent = layer.extent()
    if not extent.contains(point):
        return None
    col = int((point.x() - extent.xMinimum()) / layer.rasterUnitsPerPixelX())
    row = int((extent.yMaximum() - point.y()) / layer.rasterUnitsPerPixelY())
    return min(col, layer.width() - 1), min(row, layer.height() - 1)


def bad_band_list(path: str) -> tuple[int, ...]:
    """0-based bands flagged bad (``bbl`` = 0) in the band items or the ENVI domain."""
    from osgeo import gdal

    ds = gdal.Open(path)
    try:
        items = [ds.GetRasterBand(i + 1).GetMetadataItem("bbl") for i in range(ds.RasterCount)]
        if not any(item is not None for item in items):
            envi = (ds.GetMetadata("ENVI") or {}).get("bbl", "")
            items = envi.strip("{} ").split(",") if envi else []
    finally:
        ds = None
    flagged = []
    for band, item in enumerate(items):
        try:
            if item is not None and float(item) == 0:
                flagged.append(band)
        except ValueError:
            continue
    return tuple(flagged)


def lost_band_list(metadata: dict) -> tuple[int, ...]:
    """0-based bands a band-loss record (``DAMP_DEGRADATION``) says were lost."""
    try:
        record = json.loads(metadata.get("DAMP_DEGRADATION", "") or "{}")
    except json.JSONDecodeError:
        return ()
    return tuple(int(b) for b in record.get("bands", ())) if record.get("kind") == "band_loss" else ()


def read_spectrum(layer: QgsRasterLayer, col: int, row: int) -> Spectrum:
    """The spectrum of pixel (col, row) of ``layer``, read through the engine (scale applied)."""
    from damp_engine import RasterReader

    with RasterReader(layer.source()) as reader:
        data, valid = reader.read(col, row, 1, 1)
        info = reader.info
    values = np.where(valid[:, 0, 0], data[:, 0, 0], np.nan).astype(np.float64)
    return Spectrum(layer.id(), layer.name(), values, info.wavelengths, bad_band_list(layer.source()),
                    lost_band_list(info.metadata))


# ------------------------------------------------------------------------------- the plot

def _nice_step(span: float, count: int) -> float:
    """A round tick step (1, 2 or 5 × 10^k) giving about ``count`` ticks over ``span``."""
    raw = span / max(count, 1)
    if raw <= 0 or not math.isfinite(raw):
        return 1.0
    power = 10 ** math.floor(math.log10(raw))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= raw)


class SpectrumPlot(QWidget):
    """Spectra as lines against wavelength (or band number), bad and lost bands shaded behind.

    The first spectrum is the active layer's (black); the rest follow ``SERIES_COLOURS``. A
    pixel without data in a band leaves a gap in its line. Hovering shows the values of the
    nearest band.
    """

    MARGIN_LEFT, MARGIN_TOP, MARGIN_RIGHT = 44, 6, 10

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.spectra: list[Spectrum] = []
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
        self.setMinimumHeight(160)
        self.setMouseTracking(True)

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt API)
        return QSize(240, 200)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt API)
        return QSize(120, 160)

    def set_spectra(self, spectra: list[Spectrum]) -> None:
        """Draw ``spectra`` (the active layer's first)."""
        self.spectra = list(spectra)[:MAX_SERIES]
        self.update()

    def colour(self, index: int) -> QColor:
        """The line colour of the ``index``-th spectrum."""
        return SERIES_COLOURS[index % len(SERIES_COLOURS)]

    # --- axes --------------------------------------------------------------------------------
    @property
    def uses_wavelengths(self) -> bool:
        return bool(self.spectra) and all(s.wavelengths for s in self.spectra)

    def positions(self, spectrum: Spectrum) -> np.ndarray:
        """The x value of every band of ``spectrum``: its wavelength in nm, or its 1-based number."""
        if self.uses_wavelengths:
            return np.asarray(spectrum.wavelengths, np.float64)
        return np.arange(1, spectrum.values.size + 1, dtype=np.float64)

    def x_range(self) -> tuple[float, float]:
        xs = np.concatenate([self.positions(s) for s in self.spectra])
        low, high = float(xs.min()), float(xs.max())
        return (low, high) if high > low else (low - 1, high + 1)

    def y_range(self) -> tuple[float, float]:
        values = np.concatenate([s.values[np.isfinite(s.values)] for s in self.spectra] or [np.zeros(1)])
        if values.size == 0:
            return 0.0, 1.0
        low, high = min(0.0, float(values.min())), float(values.max())
        return (low, high * 1.05 if high > 0 else high + 1) if high > low else (low - 1, low + 1)

    def plot_rect(self) -> QRectF:
        """The area inside the axes; below it, a row of tick labels and a row for the axis title."""
        bottom = 2 * QFontMetrics(self.font()).height() + 6
        return QRectF(self.MARGIN_LEFT, self.MARGIN_TOP, max(1, self.width() - self.MARGIN_LEFT - self.MARGIN_RIGHT),
                      max(1, self.height() - self.MARGIN_TOP - bottom))

    def to_screen(self, x: float, y: float) -> QPointF:
        """The widget point of data point (x, y)."""
        rect, (x0, x1), (y0, y1) = self.plot_rect(), self.x_range(), self.y_range()
        return QPointF(rect.left() + (x - x0) / (x1 - x0) * rect.width(),
                       rect.bottom() - (y - y0) / (y1 - y0) * rect.height())

    def band_span(self, spectrum: Spectrum, band: int) -> tuple[float, float]:
        """The x interval a band covers: half-way to its neighbours."""
        xs = self.positions(spectrum)
        first_step = xs[1] - xs[0] if xs.size > 1 else 1.0  # an end band reaches half a step outwards
        last_step = xs[-1] - xs[-2] if xs.size > 1 else 1.0
        left = (xs[band] + xs[band - 1]) / 2 if band > 0 else xs[band] - first_step / 2
        right = (xs[band] + xs[band + 1]) / 2 if band + 1 < xs.size else xs[band] + last_step / 2
        return float(left), float(right)

    def bad_bands(self) -> list[int]:
        """Bands any shown layer flags bad (outputs do not always keep the ``bbl`` items)."""
        size = self.spectra[0].values.size if self.spectra else 0
        return sorted({band for s in self.spectra for band in s.bad_bands if band < size})

    def lost_bands(self) -> list[int]:
        """Bands a shown layer's band-loss record names (a restored layer keeps its input's record)."""
        size = self.spectra[0].values.size if self.spectra else 0
        return sorted({band for s in self.spectra for band in s.lost_bands if band < size})

    # --- painting ----------------------------------------------------------------------------
    def paintEvent(self, event) -> None:  # noqa: N802 (Qt API)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.Antialiasing)
        rect = self.plot_rect()
        text = self.palette().color(QPalette.WindowText)
        painter.fillRect(rect, self.palette().color(QPalette.Base))
        if not self.spectra:
            painter.setPen(QColor(128, 128, 128))
            painter.drawText(rect, Qt.AlignCenter | Qt.TextWordWrap, "Pick a pixel on the map")
            painter.end()
            return
        self._paint_band_marks(painter, rect)
        self._paint_axes(painter, rect, text)
        painter.setClipRect(rect)
        for index, spectrum in enumerate(self.spectra):
            painter.setPen(QPen(self.colour(index), 1.6 if index == 0 else 1.3))
            painter.drawPath(self._path(spectrum))
        painter.end()

    def _paint_band_marks(self, painter: QPainter, rect: QRectF) -> None:
        reference = self.spectra[0]
        marks = [(band, BAD_BAND_COLOUR) for band in self.bad_bands()]
        marks += [(band, LOST_BAND_COLOUR) for band in self.lost_bands()]
        for band, colour in marks:
            left, right = self.band_span(reference, band)
            x0, x1 = self.to_screen(left, 0).x(), self.to_screen(right, 0).x()
            painter.fillRect(QRectF(x0, rect.top(), max(1.5, x1 - x0), rect.height()), colour)

    def _paint_axes(self, painter: QPainter, rect: QRectF, colour: QColor) -> None:
        metrics = QFontMetrics(self.font())
        painter.setPen(QPen(colour, 1))
        painter.drawRect(rect)
        (x0, x1), (y0, y1) = self.x_range(), self.y_range()
        step = _nice_step(x1 - x0, max(2, int(rect.width() // 60)))
        tick = math.ceil(x0 / step) * step
        while tick <= x1 + 1e-9:
            x = self.to_screen(tick, y0).x()
            painter.drawLine(QPointF(x, rect.bottom()), QPointF(x, rect.bottom() + 3))
            label = f"{tick:g}"
            painter.drawText(QRectF(x - 30, rect.bottom() + 3, 60, metrics.height()), Qt.AlignHCenter, label)
            tick += step
        unit = "wavelength (nm)" if self.uses_wavelengths else "band"
        painter.drawText(QRectF(rect.left(), rect.bottom() + 4 + metrics.height(), rect.width(), metrics.height()),
                         Qt.AlignHCenter, unit)
        step = _nice_step(y1 - y0, max(2, int(rect.height() // 35)))
        tick = math.ceil(y0 / step) * step
        while tick <= y1 + 1e-12:
            y = self.to_screen(x0, tick).y()
            painter.drawLine(QPointF(rect.left() - 3, y), QPointF(rect.left(), y))
            painter.drawText(QRectF(0, y - metrics.height() / 2, rect.left() - 5, metrics.height()),
                             Qt.AlignRight | Qt.AlignVCenter, f"{tick:.3g}")
            tick += step

    def _path(self, spectrum: Spectrum) -> QPainterPath:
        path = QPainterPath()
        drawing = False
        for x, y in zip(self.positions(spectrum), spectrum.values):
            if not math.isfinite(y):
                drawing = False
                continue
            point = self.to_screen(float(x), float(y))
            if drawing:
                path.lineTo(point)
            else:
                path.moveTo(point)
                drawing = True
        return path

    # --- hover -------------------------------------------------------------------------------
    def nearest_band(self, x_pixel: float) -> int | None:
        """The band of the active layer's spectrum nearest the widget column ``x_pixel``."""
        if not self.spectra:
            return None
        xs = np.array([self.to_screen(x, 0).x() for x in self.positions(self.spectra[0])])
        return int(np.argmin(np.abs(xs - x_pixel)))

    def band_tooltip(self, band: int) -> str:
        """"band 44 · 641.1 nm" then every layer's value in that band."""
        reference = self.spectra[0]
        where = f"band {band + 1}"
        if reference.wavelengths:
            where += f" · {reference.wavelengths[band]:.1f} nm"
        if band in self.bad_bands():
            where += " · bad band"
        if band in self.lost_bands():
            where += " · lost band"
        lines = [where]
        for spectrum in self.spectra:
            value = spectrum.values[band] if band < spectrum.values.size else float("nan")
            lines.append(f"{spectrum.name}: {'no data' if not math.isfinite(value) else f'{value:.4g}'}")
        return "\n".join(lines)

    def mouseMoveEvent(self, event) -> None:  # noqa: N802 (Qt API)
        band = self.nearest_band(event.pos().x())
        self.setToolTip(self.band_tooltip(band) if band is not None else "")
        super().mouseMoveEvent(event)


class SpectrumLegend(QWidget):
    """One row per spectrum (its colour as a line, its name shortened with "…" to fit) and a row for
    the shaded bands; ``items`` are (colour, text, "line" | "box") in rows, the band marks last."""

    SWATCH = 16

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.rows: list[list[tuple[QColor, str, str]]] = []
        self.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Fixed)

    def set_rows(self, rows: list[list[tuple[QColor, str, str]]]) -> None:
        self.rows = rows
        self.setFixedHeight(self.sizeHint().height())
        self.setToolTip("\n".join(text for row in rows for _, text, _ in row))
        self.update()

    def texts(self) -> list[str]:
        """Every item's full text, row by row."""
        return [text for row in self.rows for _, text, _ in row]

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt API)
        return QSize(200, len(self.rows) * (QFontMetrics(self.font()).height() + 2))

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt API)
        return QSize(60, self.sizeHint().height())

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt API)
        painter = QPainter(self)
        metrics = QFontMetrics(self.font())
        line = metrics.height() + 2
        text_colour = self.palette().color(QPalette.WindowText)
        for index, row in enumerate(self.rows):
            top, width = index * line, self.width() / max(len(row), 1)
            for column, (colour, text, kind) in enumerate(row):
                left = column * width
                if kind == "line":
                    painter.setPen(QPen(colour, 2.5))
                    painter.drawLine(QPointF(left + 1, top + line / 2), QPointF(left + self.SWATCH - 2, top + line / 2))
                else:
                    painter.fillRect(QRectF(left + 2, top + 3, self.SWATCH - 5, line - 6), colour)
                painter.setPen(text_colour)
                room = int(width - self.SWATCH - 6)
                painter.drawText(QRectF(left + self.SWATCH + 2, top, room, line), Qt.AlignLeft | Qt.AlignVCenter,
                                 metrics.elidedText(text, Qt.ElideMiddle, room))
        painter.end()


# ------------------------------------------------------------------------------- the panel

class ProfilePanel(QWidget):
    """The pick button, the plot and its legend. ``show_at`` draws the spectra under a map point.

    The pick button turns on a map tool on ``canvas``; every click on the map shows that pixel.
    Emits ``picked(col, row)`` with the active layer's pixel after each successful pick.
    """

    picked = pyqtSignal(int, int)

    def __init__(self, canvas: QgsMapCanvas, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.canvas = canvas
        self.layer: QgsRasterLayer | None = None
        self.pixel: tuple[int, int] | None = None
        self.point: tuple[QgsPointXY, QgsCoordinateReferenceSystem] | None = None
        self.pick_button = QToolButton()
        self.pick_button.setText("Pick pixel")
        self.pick_button.setCheckable(True)
        self.pick_button.setToolButtonStyle(Qt.ToolButtonTextOnly)
        self.pick_button.setToolTip("Click a pixel on the map to see its spectrum in this layer and in the "
                                    "layers made from it (degraded, restored).")
        self.position = ElidedLabel()
        self.position.setStyleSheet("color: gray;")
        self.plot = SpectrumPlot()
        self.legend = SpectrumLegend()
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.pick_button)
        top.addWidget(self.position, 1)
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 0, 0, 0)
        column.addLayout(top)
        column.addWidget(self.plot)
        column.addWidget(self.legend)

        self.tool = QgsMapToolEmitPoint(canvas)
        self.tool.canvasClicked.connect(self._on_clicked)
        self.tool.deactivated.connect(lambda: self.pick_button.setChecked(False))
        canvas.destinationCrsChanged.connect(self._on_canvas_crs_changed)  # the marker is in map coordinates
        self.pick_button.toggled.connect(self._on_pick_toggled)
        self.marker: QgsVertexMarker | None = None
        self._show_hint()

    def set_layer(self, layer: QgsMapLayer | None) -> None:
        """Follow ``layer`` (the active layer): redraw the picked point in it, if any."""
        self.layer = layer if isinstance(layer, QgsRasterLayer) else None
        if self.point is not None:
            self.show_at(*self.point)
        else:
            self._show_hint()

    def show_at(self, point: QgsPointXY, crs: QgsCoordinateReferenceSystem) -> bool:
        """Draw the spectra under ``point`` (in ``crs``); False if it is not on the active layer."""
        self.point = (point, crs)
        self._place_marker(point, crs)
        pixel = pixel_at(self.layer, point, crs) if self.layer is not None else None
        if pixel is None:
            self.pixel = None
            self.plot.set_spectra([])
            self.position.setText("outside the layer" if self.layer is not None else "")
            self.legend.set_rows([])
            return False
        self.pixel = pixel
        spectra = [read_spectrum(self.layer, *pixel)]
        for layer in related_layers(self.layer, QgsProject.instance().mapLayers().values()):
            where = pixel_at(layer, point, crs)
            if where is not None and len(spectra) < MAX_SERIES:
                spectra.append(read_spectrum(layer, *where))
        self.plot.set_spectra(spectra)
        self.position.setText(f"pixel {pixel[0] + 1}, {pixel[1] + 1}")
        self.position.setToolTip(f"Column {pixel[0] + 1}, row {pixel[1] + 1} of “{self.layer.name()}” (from 1)")
        self.legend.set_rows(self._legend_rows(spectra))
        self.picked.emit(*pixel)
        return True

    def _legend_rows(self, spectra: list[Spectrum]) -> list[list[tuple[QColor, str, str]]]:
        """One row per spectrum, then one for the band marks shown; a layer made from the active one
        is named by what was done to it ("… — restored")."""
        active = spectra[0].name

        def label(spectrum: Spectrum) -> str:
            if spectrum.name.startswith(active + SEPARATOR):
                return "…" + spectrum.name[len(active):]
            return spectrum.name

        rows = [[(self.plot.colour(i), label(s), "line")] for i, s in enumerate(spectra)]
        marks = [(colour, text, "box") for colour, text, bands in
                 ((BAD_BAND_COLOUR, "bad bands", self.plot.bad_bands()), (LOST_BAND_COLOUR, "lost bands",
                                                                          self.plot.lost_bands())) if bands]
        return rows + ([marks] if marks else [])

    def _show_hint(self) -> None:
        self.plot.set_spectra([])
        self.legend.set_rows([])
        self.position.setText("click “Pick pixel”, then the map" if self.layer is not None else "")

    def _on_pick_toggled(self, checked: bool) -> None:
        if checked:
            self.canvas.setMapTool(self.tool)
        elif self.canvas.mapTool() is self.tool:
            self.canvas.unsetMapTool(self.tool)

    def _on_clicked(self, point: QgsPointXY, button) -> None:
        self.show_at(point, self.canvas.mapSettings().destinationCrs())

    def _on_canvas_crs_changed(self) -> None:
        if self.point is not None and self.marker is not None:
            self._place_marker(*self.point)

    def _place_marker(self, point: QgsPointXY, crs: QgsCoordinateReferenceSystem) -> None:
        canvas_crs = self.canvas.mapSettings().destinationCrs()
        if crs.isValid() and canvas_crs.isValid() and crs != canvas_crs:
            try:
                point = QgsCoordinateTransform(crs, canvas_crs, QgsProject.instance()).transform(point)
            except QgsCsException:
                return
        if self.marker is None:
            self.marker = QgsVertexMarker(self.canvas)
            self.marker.setIconType(QgsVertexMarker.ICON_CROSS)
            self.marker.setColor(QColor(255, 255, 0))
            self.marker.setFillColor(QColor(0, 0, 0))
            self.marker.setPenWidth(3)
            self.marker.setIconSize(18)
        self.marker.setCenter(point)

    def remove_marker(self) -> None:
        """Take the pick marker off the map (the dock is going away)."""
        if self.marker is not None:
            self.canvas.scene().removeItem(self.marker)
            self.marker = None
