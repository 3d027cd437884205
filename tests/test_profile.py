"""The dock's spectral profile, offscreen: a click on the map shows that pixel's spectrum in the
active layer and in the layers made from it, with the file's values, each in its own colour, and
the lost and bad bands shaded."""
from __future__ import annotations

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsPointXY, QgsProject, QgsRasterLayer
from qgis.gui import QgsMapCanvas
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QColor, QPalette

from helpers import smooth_cube, write_raster
from damp_engine.scene import degrade_raster
from damp_qgis.dock.profile import (BAD_BAND_COLOUR, LOST_BAND_COLOUR, ProfilePanel, SpectrumPlot, pixel_at,
                                    related_layers)

pytestmark = pytest.mark.qgis
BANDS, ROWS, COLS = 31, 24, 32
WAVELENGTHS = np.linspace(400.0, 700.0, BANDS)
PIXEL = 30.0
ORIGIN = (500000.0, 5800000.0)
GEO = dict(geotransform=(ORIGIN[0], PIXEL, 0.0, ORIGIN[1], 0.0, -PIXEL), wavelengths=WAVELENGTHS)
BAD = (14, 15)  # 0-based bands flagged bbl=0 in the clean raster


def copy_metadata(source, target) -> None:
    metadata = gdal.Info(str(source), format="json")["metadata"][""]
    ds = gdal.Open(str(target), gdal.GA_Update)
    ds.SetMetadata(metadata)
    ds = None


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    """A clean raster (two bands flagged bad), its copy with lost bands, a "restoration" of that,
    an unrelated raster on another grid and a DAMP product on the clean grid under another name."""
    folder = tmp_path_factory.mktemp("profile")
    cube = smooth_cube(BANDS, ROWS, COLS)
    clean = write_raster(folder / "clean.tif", cube, **GEO)
    ds = gdal.Open(str(clean), gdal.GA_Update)
    for band in range(BANDS):
        ds.GetRasterBand(band + 1).SetMetadataItem("bbl", "0" if band in BAD else "1")
    ds = None
    lost = folder / "lost.tif"
    record = degrade_raster(clean, lost, "band_loss", seed=1, fraction=0.1)
    restored = write_raster(folder / "restored.tif", cube * np.float32(0.98), **GEO)
    copy_metadata(lost, restored)
    other = write_raster(folder / "other.tif", smooth_cube(BANDS, 10, 10, seed=3), **GEO)
    product = write_raster(folder / "product.tif", cube * np.float32(1.01), **GEO)
    copy_metadata(lost, product)
    return {"clean": clean, "lost": lost, "restored": restored, "other": other, "product": product,
            "cube": cube, "record": record}


@pytest.fixture
def layers(qgis_app, files):
    names = {"clean": "scene", "lost": "scene — degraded (band loss)",
             "restored": "scene — degraded (band loss) — restored", "other": "elsewhere",
             "product": "my restoration"}
    made = {key: QgsRasterLayer(str(files[key]), name) for key, name in names.items()}
    QgsProject.instance().addMapLayers(list(made.values()))
    yield made
    QgsProject.instance().removeAllMapLayers()


@pytest.fixture
def panel(qgis_app, layers):
    canvas = QgsMapCanvas()
    canvas.setDestinationCrs(layers["clean"].crs())
    canvas.setExtent(layers["clean"].extent())
    widget = ProfilePanel(canvas)
    widget.resize(300, 260)
    widget.show()
    widget.set_layer(layers["clean"])
    yield widget
    widget.remove_marker()
    widget.deleteLater()
    canvas.deleteLater()


def centre_of(col: int, row: int) -> QgsPointXY:
    return QgsPointXY(ORIGIN[0] + (col + 0.5) * PIXEL, ORIGIN[1] - (row + 0.5) * PIXEL)


def click(panel: ProfilePanel, col: int, row: int) -> None:
    """A left click of the pick tool on the centre of pixel (col, row)."""
    panel.tool.canvasClicked.emit(centre_of(col, row), Qt.LeftButton)


def file_spectrum(path, col: int, row: int) -> np.ndarray:
    ds = gdal.Open(str(path))
    try:
        return ds.ReadAsArray(col, row, 1, 1)[:, 0, 0].astype(np.float64)
    finally:
        ds = None


def test_related_layers_are_those_named_after_it_and_damp_products_on_its_grid(layers):
    related = related_layers(layers["clean"], QgsProject.instance().mapLayers().values())
    assert [layer.name() for layer in related] == ["my restoration", "scene — degraded (band loss)",
                                                   "scene — degraded (band loss) — restored"]


def test_a_derived_layer_finds_its_source_too(layers):
    related = related_layers(layers["restored"], QgsProject.instance().mapLayers().values())
    assert {"scene", "scene — degraded (band loss)"} <= {layer.name() for layer in related}
    assert "elsewhere" not in {layer.name() for layer in related}


def test_pixel_at_counts_columns_and_rows_from_the_top_left(layers):
    assert pixel_at(layers["clean"], centre_of(5, 7), layers["clean"].crs()) == (5, 7)
    assert pixel_at(layers["clean"], centre_of(COLS + 2, 0), layers["clean"].crs()) is None


def test_the_pick_button_turns_the_map_tool_on_and_off(panel):
    panel.pick_button.click()
    assert panel.canvas.mapTool() is panel.tool
    panel.pick_button.click()
    assert panel.canvas.mapTool() is not panel.tool


def test_a_click_shows_the_pixels_spectrum_in_every_related_layer(panel, files):
    click(panel, 5, 7)
    assert panel.pixel == (5, 7)
    shown = {s.name: s for s in panel.plot.spectra}
    assert panel.plot.spectra[0].name == "scene"
    assert set(shown) == {"scene", "scene — degraded (band loss)", "scene — degraded (band loss) — restored",
                          "my restoration"}
    for key, name in (("clean", "scene"), ("lost", "scene — degraded (band loss)")):
        assert shown[name].values == pytest.approx(file_spectrum(files[key], 5, 7), rel=1e-6)
    assert shown["scene"].wavelengths == pytest.approx(tuple(WAVELENGTHS), abs=1e-3)
    assert "pixel 6, 8" in panel.position.text()


def test_lost_and_bad_bands_are_known(panel, files):
    click(panel, 2, 3)
    shown = {s.name: s for s in panel.plot.spectra}
    assert shown["scene"].bad_bands == BAD
    assert shown["scene — degraded (band loss)"].lost_bands == tuple(files["record"].bands)
    assert {"lost bands", "bad bands"} <= set(panel.legend.texts())


def colour_near(image, x: int, y: int, colour: QColor, tolerance: int = 40) -> bool:
    pixel = QColor(image.pixel(x, y))
    return all(abs(a - b) <= tolerance for a, b in ((pixel.red(), colour.red()), (pixel.green(), colour.green()),
                                                    (pixel.blue(), colour.blue())))


def blend(colour: QColor, base: QColor) -> QColor:
    alpha = colour.alpha() / 255
    return QColor(*(round(alpha * c + (1 - alpha) * b) for c, b in
                    ((colour.red(), base.red()), (colour.green(), base.green()), (colour.blue(), base.blue()))))


def test_lost_and_bad_bands_are_shaded_and_every_spectrum_drawn_in_its_colour(panel, files):
    click(panel, 2, 3)
    plot = panel.plot
    image = plot.grab().toImage()
    rect = plot.plot_rect()
    top = int(rect.top()) + 3  # above the curves (the axis ends 5 % above the highest value)
    base = plot.palette().color(QPalette.Base)
    reference = plot.spectra[0]
    lost = files["record"].bands[0]
    x_lost = round(plot.to_screen(reference.wavelengths[lost], 0).x())
    x_bad = round(plot.to_screen(reference.wavelengths[BAD[0]], 0).x())
    assert colour_near(image, x_lost, top, blend(LOST_BAND_COLOUR, base), 12)
    assert colour_near(image, x_bad, top, blend(BAD_BAND_COLOUR, base), 12)
    pixels = [QColor(image.pixel(x, y)) for x in range(image.width()) for y in range(image.height())]
    for index in range(len(plot.spectra)):
        colour = plot.colour(index)
        assert any(abs(p.red() - colour.red()) + abs(p.green() - colour.green()) + abs(p.blue() - colour.blue()) < 60
                   for p in pixels), f"no pixel of spectrum {index}'s colour"


def test_the_tooltip_gives_the_wavelength_and_every_layers_value(panel, files):
    click(panel, 2, 3)
    band = panel.plot.nearest_band(panel.plot.to_screen(WAVELENGTHS[10], 0).x())
    assert band == 10
    tip = panel.plot.band_tooltip(band)
    assert f"{WAVELENGTHS[10]:.1f} nm" in tip and "scene — degraded (band loss): " in tip


def test_a_click_outside_the_layer_clears_the_plot(panel):
    click(panel, 2, 3)
    click(panel, COLS + 5, 2)
    assert panel.pixel is None and panel.plot.spectra == []
    assert "outside" in panel.position.text()


def test_the_picked_point_follows_the_active_layer(panel, layers):
    click(panel, 4, 4)
    panel.set_layer(layers["lost"])
    assert panel.plot.spectra[0].name == "scene — degraded (band loss)"
    assert panel.pixel == (4, 4)


def test_a_spectrum_with_nodata_bands_draws_with_a_gap(qgis_app, tmp_path):
    cube = smooth_cube(BANDS, 4, 4)
    cube[20:23] = -9999.0
    path = write_raster(tmp_path / "gaps.tif", cube, nodata=-9999.0, **GEO)
    layer = QgsRasterLayer(str(path), "gaps")
    from damp_qgis.dock.profile import read_spectrum

    spectrum = read_spectrum(layer, 1, 1)
    assert np.isnan(spectrum.values[20:23]).all() and np.isfinite(spectrum.values[:20]).all()
    plot = SpectrumPlot()
    plot.resize(240, 180)
    plot.set_spectra([spectrum])
    assert not plot.grab().isNull()


def test_the_legend_names_derived_layers_by_what_was_done_to_them(panel):
    click(panel, 2, 3)
    texts = panel.legend.texts()
    assert texts[0] == "scene"
    assert "… — degraded (band loss) — restored" in texts and "my restoration" in texts


def test_the_pick_marker_stays_on_the_pixel_when_the_map_changes_crs(panel, layers):
    from qgis.core import QgsCoordinateReferenceSystem, QgsCoordinateTransform

    click(panel, 5, 7)
    wgs84 = QgsCoordinateReferenceSystem("EPSG:4326")
    panel.canvas.setDestinationCrs(wgs84)
    expected = QgsCoordinateTransform(layers["clean"].crs(), wgs84, QgsProject.instance()).transform(centre_of(5, 7))
    centre = panel.marker.center()
    assert centre.x() == pytest.approx(expected.x()) and centre.y() == pytest.approx(expected.y())
