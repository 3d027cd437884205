"""Raster I/O: metadata, windowed reads with halos, atomic writers that keep georeferencing."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import smooth_cube, write_raster
from osgeo import gdal

from damp_engine.errors import DampInputError
from damp_engine.raster import (STREAMING_CACHE_MB, RasterReader, RasterWriter, check_output_path, open_raster,
                                streaming_cache_bytes)


def test_sample_raster_metadata_is_read(sample_raster):
    info = open_raster(sample_raster)
    assert info.shape == (224, 96, 64)
    assert info.nodata == -32768
    assert info.scales[0] == pytest.approx(1e-4)
    assert info.wavelengths[0] == pytest.approx(418.24)
    assert "32633" in info.projection or "UTM zone 33N" in info.projection


def test_read_applies_scale_and_masks_nodata(sample_raster):
    with RasterReader(sample_raster) as reader:
        data, valid = reader.read(0, 0, 16, 16)
    assert data.dtype == np.float32
    assert not valid[129:135].any(), "water-vapour bands are nodata in the sample"
    assert valid[:129].all()
    assert 0 < data[:129].max() < 1.5, "reflectance x 10000 scaled by 0.0001"
    assert (data[129:135] == 0).all()


def test_a_window_reads_those_pixels_of_every_band(tmp_path):
    cube = smooth_cube(4, 10, 12)
    path = write_raster(tmp_path / "a.tif", cube)
    with RasterReader(path) as reader:
        data, valid = reader.read(3, 2, 5, 7)
    np.testing.assert_array_equal(data, cube[:, 2:9, 3:8])
    assert valid.shape == (4, 7, 5) and valid.all()


def test_a_band_reads_whole_in_physical_units_nan_where_nodata(tmp_path):
    cube = (smooth_cube(3, 6, 5) * 10000).astype(np.uint16)
    cube[1, 2, 3] = 0
    path = write_raster(tmp_path / "b.tif", cube, nodata=0, scale=1e-4)
    with RasterReader(path) as reader:
        band = reader.read_band(1)
    assert band.shape == (6, 5) and np.isnan(band[2, 3])
    np.testing.assert_allclose(np.delete(band.ravel(), 2 * 5 + 3), np.delete(cube[1].ravel(), 2 * 5 + 3) * 1e-4,
                               rtol=1e-6)


def test_nan_is_invalid(tmp_path):
    cube = smooth_cube(3, 8, 8)
    cube[1, 2, 3] = np.nan
    path = write_raster(tmp_path / "nan.tif", cube)
    with RasterReader(path) as reader:
        data, valid = reader.read_all()
    assert not valid[1, 2, 3] and valid.sum() == cube.size - 1
    assert np.isfinite(data).all()


@pytest.mark.parametrize("units,values,expected", [("nm", [400, 500, 600], 400.0),
                                                   ("Micrometers", [0.4, 0.5, 0.6], 400.0),
                                                   ("um", [1.0, 1.5, 2.0], 1000.0)])
def test_wavelength_units_become_nm(tmp_path, units, values, expected):
    path = write_raster(tmp_path / "w.tif", smooth_cube(3, 8, 8), wavelengths=values, units=units)
    assert open_raster(path).wavelengths[0] == pytest.approx(expected)


def test_envi_header_wavelengths_are_read(tmp_path):
    path = tmp_path / "cube.bsq"
    ds = gdal.GetDriverByName("ENVI").Create(str(path), 8, 8, 3, gdal.GDT_Float32)
    ds.GetRasterBand(1).WriteArray(np.ones((8, 8), np.float32))
    ds = None
    hdr = tmp_path / "cube.hdr"
    hdr.write_text(hdr.read_text() + "wavelength units = Micrometers\nwavelength = {0.45, 0.55, 0.65}\n")
    assert open_raster(path).wavelengths == pytest.approx((450.0, 550.0, 650.0))


@pytest.mark.parametrize("ext", [".tif", ".bsq"])
def test_writer_keeps_georeferencing_and_wavelengths(tmp_path, sample_raster, ext):
    info = open_raster(sample_raster)
    out = tmp_path / f"copy{ext}"
    with RasterReader(sample_raster) as reader, RasterWriter(out, info, nodata=-9999.0) as writer:
        for y0 in range(0, info.height, 40):
            for x0 in range(0, info.width, 40):
                data, _ = reader.read(x0, y0, min(40, info.width - x0), min(40, info.height - y0))
                writer.write(data, x0, y0)
    copy = open_raster(out)
    assert copy.shape == info.shape
    assert copy.geotransform == pytest.approx(info.geotransform)
    assert copy.projection == info.projection
    assert copy.wavelengths == pytest.approx(info.wavelengths, abs=1e-3)
    assert copy.nodata == -9999.0
    assert copy.band_names[5] == info.band_names[5]
    with RasterReader(sample_raster) as a, RasterReader(out) as b:
        np.testing.assert_allclose(a.read_all()[0][:129], b.read_all()[0][:129], atol=1e-6)


@pytest.mark.parametrize("dtype, predictor", [("int16", "2"), ("uint16", "2"), ("float32", "3")])
def test_geotiff_outputs_are_compressed_losslessly_with_the_predictor_of_their_type(tmp_path, sample_raster,
                                                                                    dtype, predictor):
    info = open_raster(sample_raster)
    rng = np.random.default_rng(0)
    values = (rng.random((info.bands, 48, 40)) * 3000).astype(dtype)
    out = tmp_path / f"{dtype}.tif"
    with RasterWriter(out, info, dtype=dtype, width=40, height=48) as writer:
        writer.write(values, 0, 0)
    ds = gdal.Open(str(out))
    assert ds.GetMetadataItem("COMPRESSION", "IMAGE_STRUCTURE") == "ZSTD"
    assert ds.GetMetadataItem("PREDICTOR", "IMAGE_STRUCTURE") == predictor
    np.testing.assert_array_equal(ds.ReadAsArray(), values)


def test_failed_write_leaves_nothing(tmp_path, sample_raster):
    info = open_raster(sample_raster)
    out = tmp_path / "out.tif"
    with pytest.raises(RuntimeError):
        with RasterWriter(out, info) as writer:
            writer.write(np.zeros((224, 8, 8), np.float32), 0, 0)
            raise RuntimeError("stop")
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_existing_destination(tmp_path, sample_raster):
    out = tmp_path / "out.tif"
    out.write_bytes(b"previous result")
    with pytest.raises(RuntimeError):
        with RasterWriter(out, open_raster(sample_raster)):
            raise RuntimeError("stop")
    assert out.read_bytes() == b"previous result"
    assert [p.name for p in tmp_path.iterdir()] == ["out.tif"]


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(DampInputError, match="not found"):
        open_raster(tmp_path / "nope.tif")


def test_unreadable_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.tif"
    bad.write_text("not a raster")
    with pytest.raises(DampInputError, match="cannot open"):
        open_raster(bad)


def test_too_few_bands_is_a_clear_error(tmp_path):
    path = write_raster(tmp_path / "one.tif", smooth_cube(1, 8, 8))
    with pytest.raises(DampInputError, match="at least 3"):
        open_raster(path, min_bands=3)


def test_output_equal_to_input_is_refused(sample_raster):
    with pytest.raises(DampInputError, match="input"):
        check_output_path(sample_raster, sample_raster)


def test_unknown_output_extension_is_refused(tmp_path, sample_raster):
    with pytest.raises(DampInputError, match=".tif"):
        check_output_path(tmp_path / "out.xyz", sample_raster)


def test_scale_factor_is_robust_to_noise(tmp_path):
    from damp_engine.scaling import measure_scaling

    clean = smooth_cube(31, 64, 64)
    noisy = clean + np.random.default_rng(0).normal(0, 50 / 255, clean.shape).astype(np.float32)
    factors = []
    for name, cube in (("clean.tif", clean), ("noisy.tif", noisy)):
        with RasterReader(write_raster(tmp_path / name, cube)) as reader:
            factors.append(measure_scaling(reader).factor)
    assert factors[1] / factors[0] < 1.15, "noise must not inflate the factor much"


def test_excluded_bands_do_not_set_the_factor(tmp_path):
    from damp_engine.scaling import measure_scaling

    cube = smooth_cube(5, 32, 32)
    cube[2] = 1000.0
    with RasterReader(write_raster(tmp_path / "junk.tif", cube)) as reader:
        plain = measure_scaling(reader).factor
        bad = np.zeros(5, bool)
        bad[2] = True
        cleaned = measure_scaling(reader, exclude=bad)
    assert plain == pytest.approx(1000.0) and cleaned.factor < 1.0 and cleaned.good_bands.all()


# --- damaged files and output checks: one DampInputError that names the user's file ------------

def test_truncated_geotiff_is_a_clear_error_naming_the_file(tmp_path):
    whole = write_raster(tmp_path / "whole.tif", smooth_cube(8, 40, 40)).read_bytes()
    cut = tmp_path / "cut.tif"
    cut.write_bytes(whole[: len(whole) // 2])
    with RasterReader(cut) as reader, pytest.raises(DampInputError, match=r"Cannot read .*cut\.tif.*damaged"):
        reader.read_all()


def test_damaged_header_is_a_clear_error(tmp_path):
    whole = bytearray(write_raster(tmp_path / "whole.tif", smooth_cube(8, 16, 16)).read_bytes())
    whole[2] ^= 0xFF  # the TIFF magic number
    bad = tmp_path / "bad.tif"
    bad.write_bytes(bytes(whole))
    with pytest.raises(DampInputError, match="cannot open"):
        open_raster(bad)


def test_output_that_is_a_folder_is_refused(tmp_path, sample_raster):
    (tmp_path / "out.tif").mkdir()
    with pytest.raises(DampInputError, match="is a folder"):
        check_output_path(tmp_path / "out.tif", sample_raster)


def test_output_that_is_another_kind_of_file_is_refused(tmp_path, sample_raster):
    (tmp_path / "notes.tif").write_text("my notes")
    with pytest.raises(DampInputError, match="not a raster"):
        check_output_path(tmp_path / "notes.tif", sample_raster)


def test_output_that_is_a_raster_may_be_replaced(tmp_path, sample_raster):
    old = write_raster(tmp_path / "old.tif", smooth_cube(3, 8, 8))
    assert check_output_path(old, sample_raster) == old.resolve()


def test_unwritable_folder_is_refused_naming_the_output(tmp_path, sample_raster, monkeypatch):
    monkeypatch.setattr("os.access", lambda path, mode: False)
    with pytest.raises(DampInputError, match=r"Cannot write .*out\.tif: the folder .* is not writable"):
        check_output_path(tmp_path / "out.tif", sample_raster)


def test_writability_is_probed_not_only_asked(tmp_path, sample_raster, monkeypatch):
    """os.access says yes to root even where writing fails (a read-only mount): a probe file decides."""
    import os

    real_open = os.open

    def refuse_probe(path, flags, mode=0o777):
        if ".probe" in str(path):
            raise PermissionError(13, "Read-only file system")
        return real_open(path, flags, mode)

    monkeypatch.setattr("os.access", lambda path, mode: True)
    monkeypatch.setattr("os.open", refuse_probe)
    with pytest.raises(DampInputError, match="not writable .read-only file system"):
        check_output_path(tmp_path / "out.tif", sample_raster)
    assert list(tmp_path.iterdir()) == []


def test_writer_error_names_the_destination_not_the_temporary_file(tmp_path, sample_raster):
    with pytest.raises(DampInputError) as caught:
        RasterWriter(tmp_path / "gone" / "out.tif", open_raster(sample_raster))
    assert "out.tif" in str(caught.value) and ".part" not in str(caught.value)


def test_writer_temporary_file_is_hidden_and_records_the_pid(tmp_path, sample_raster):
    import os

    writer = RasterWriter(tmp_path / "out.tif", open_raster(sample_raster))
    try:
        assert [p.name for p in tmp_path.iterdir()] == [writer.temp.name]
        assert writer.temp.name.startswith(".out.") and f".{os.getpid()}." in writer.temp.name
    finally:
        writer.discard()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("width, bands, dtype, expected_mb", [(1000, 224, gdal.GDT_Int16, 280.0),
                                                              (300, 31, gdal.GDT_Int16, None),
                                                              (3000, 224, gdal.GDT_Float32, None)])
def test_streaming_cache_holds_two_rows_of_blocks_and_the_halo_within_bounds(tmp_path, width, bands, dtype,
                                                                            expected_mb):
    """224 bands in 256-pixel blocks: 1024 px × 224 bands × 2 bytes a row, 640 rows (two block rows
    and twice the 64 px halo) = 280 MB; a narrow 31-band raster gets the least, a wide float one the most."""
    path = tmp_path / "blocks.tif"
    gdal.GetDriverByName("GTiff").Create(str(path), width, 300, bands, dtype,
                                         ["TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256", "SPARSE_OK=TRUE"])
    mb = streaming_cache_bytes(path) / 2**20
    low, high = STREAMING_CACHE_MB
    assert mb == pytest.approx(expected_mb if expected_mb else (low if width < 1000 else high))
    assert streaming_cache_bytes(tmp_path / "missing.tif") == low * 2**20
