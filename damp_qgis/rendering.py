"""How the plugin draws a hyperspectral raster: true colour from its wavelengths.

One renderer for every place that shows a raster: outputs loaded after a run, the dock's *True
colour* action on any layer, and the screenshots. Red, green and blue are the bands nearest
640, 550 and 460 nm (``damp_engine.raster.RasterInfo.rgb_bands``), stretched by a 2-98 %
cumulative cut, so a degraded input and its restoration look alike where they are alike.
"""
from __future__ import annotations

from qgis.core import (QgsContrastEnhancement, QgsMapLayer, QgsMultiBandColorRenderer, QgsRasterLayer,
                       QgsRasterMinMaxOrigin)

TARGETS_NM = (640.0, 550.0, 460.0)  # red, green, blue
TOLERANCE_NM = 40.0  # the nearest band must be this close to each target for a true-colour view


def true_colour_bands(layer: QgsMapLayer | None) -> tuple[int, int, int] | None:
    """The 1-based red, green and blue bands of ``layer``, or None when it has no true colour
    (not a GDAL raster, fewer than 3 bands, or no band within 40 nm of 640, 550 or 460 nm)."""
    if not isinstance(layer, QgsRasterLayer) or not layer.isValid() or layer.providerType() != "gdal" \
            or layer.bandCount() < 3:
        return None
    from damp_engine import DampInputError, open_raster

    try:
        info = open_raster(layer.source())
    except DampInputError:
        return None
    if not info.wavelengths:
        return None
    bands = info.rgb_bands()
    if any(abs(info.wavelengths[band] - target) > TOLERANCE_NM for band, target in zip(bands, TARGETS_NM)):
        return None
    return tuple(band + 1 for band in bands)


def show_true_colour(layer: QgsMapLayer | None) -> bool:
    """Draw ``layer`` in true colour with a 2-98 % cumulative-cut stretch; False if it has none."""
    bands = true_colour_bands(layer)
    if bands is None:
        return False
    layer.setRenderer(QgsMultiBandColorRenderer(layer.dataProvider(), *bands))
    layer.setContrastEnhancement(QgsContrastEnhancement.StretchToMinimumMaximum, QgsRasterMinMaxOrigin.CumulativeCut)
    layer.triggerRepaint()
    return True


def is_true_colour(layer: QgsMapLayer | None) -> bool:
    """Whether ``layer`` is drawn with the bands :func:`show_true_colour` would pick."""
    bands = true_colour_bands(layer)
    renderer = layer.renderer() if bands is not None else None
    return renderer is not None and renderer.type() == "multibandcolor" and \
        (renderer.redBand(), renderer.greenBand(), renderer.blueBand()) == bands
