"""Which layers the dock can inspect, and the pixel window of a layer that the map shows."""
from __future__ import annotations

import math

from qgis.core import QgsCoordinateTransform, QgsCsException, QgsMapLayer, QgsProject, QgsRasterLayer
from qgis.gui import QgsMapCanvas

MIN_BANDS = 3  # the spectral metrics use second differences along the spectrum

Window = tuple[int, int, int, int]  # x0, y0, width, height in pixels


def layer_problem(layer: QgsMapLayer | None) -> str | None:
    """Why ``layer`` cannot be inspected, in one sentence for the user; None when it can."""
    if layer is None:
        return "Select a hyperspectral raster layer in the Layers panel."
    name = layer.name()
    if not isinstance(layer, QgsRasterLayer):
        return f"“{name}” is not a raster layer. Select a hyperspectral raster layer to see its degradation."
    if layer.providerType() != "gdal":
        return (f"“{name}” comes from the {layer.providerType()} provider; DAMP reads raster files "
                "(GeoTIFF, ENVI, VRT…) through GDAL.")
    if layer.bandCount() < MIN_BANDS:
        return (f"“{name}” has {layer.bandCount()} band(s); the degradation prompt needs at least "
                f"{MIN_BANDS} (a multi- or hyperspectral raster).")
    return None


def visible_window(layer: QgsRasterLayer, canvas: QgsMapCanvas) -> Window | None:
    """The layer's pixels shown by ``canvas`` as (x0, y0, width, height), or None if none is visible.

    The canvas extent is transformed to the layer's CRS (its bounding box, for a reprojected
    view) and intersected with the layer's extent; rows count down from the layer's top edge.
    """
    extent = canvas.extent()
    if canvas.mapSettings().destinationCrs() != layer.crs():
        transform = QgsCoordinateTransform(canvas.mapSettings().destinationCrs(), layer.crs(), QgsProject.instance())
        try:
            extent = transform.transformBoundingBox(extent)
        except QgsCsException:
            return None
    full = layer.extent()
    visible = extent.intersect(full)
    if visible.isEmpty():
        return None
    size_x, size_y = layer.rasterUnitsPerPixelX(), layer.rasterUnitsPerPixelY()
    x0 = max(0, math.floor((visible.xMinimum() - full.xMinimum()) / size_x))
    y0 = max(0, math.floor((full.yMaximum() - visible.yMaximum()) / size_y))
    x1 = min(layer.width(), math.ceil((visible.xMaximum() - full.xMinimum()) / size_x))
    y1 = min(layer.height(), math.ceil((full.yMaximum() - visible.yMinimum()) / size_y))
    if x1 <= x0 or y1 <= y0:
        return None
    return (x0, y0, x1 - x0, y1 - y0)
