"""Fuzz: a few hundred seeded mutations of small valid GeoTIFF and ENVI files (truncation, flipped
header bytes, absurd sizes, wrong band counts and types, NaN/Inf patterns) through `prompt` and
`restore`: each run either succeeds or is refused with one DampInputError sentence (exit code 2);
never another exception, never a crash, never a file left behind, never a changed input.

The mutated files are made here, seeded; one separate Python process runs them all, so that a
crash inside GDAL would show as that process dying (with the case it was on), not as pytest
dying. It loads the bundled model once and runs `restore_raster` directly, and every tenth case
through the `damp` command line as well.
"""
from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import ROOT, smooth_cube, write_raster
from osgeo import gdal

SEED = 12
BANDS, SIDE = 12, 32
TIFF_CASES, ENVI_CASES, NAN_CASES = 150, 70, 20
TIFF_TAGS = {"width": 256, "height": 257, "bits": 258, "compression": 259, "samples": 277, "rows_per_strip": 278,
             "format": 339}


# --- valid starting files --------------------------------------------------------------------

def base_tiff(path: Path, tiled: bool) -> bytes:
    cube = smooth_cube(BANDS, SIDE, SIDE)
    if not tiled:
        return write_raster(path, cube).read_bytes()
    ds = gdal.GetDriverByName("GTiff").Create(str(path), SIDE, SIDE, BANDS, gdal.GDT_Float32,
                                              ["TILED=YES", "BLOCKXSIZE=16", "BLOCKYSIZE=16", "COMPRESS=DEFLATE"])
    for i in range(BANDS):
        ds.GetRasterBand(i + 1).WriteArray(cube[i])
    ds = None
    return path.read_bytes()


def base_envi(folder: Path) -> tuple[str, bytes]:
    write_raster(folder / "base.bsq", smooth_cube(BANDS, SIDE, SIDE), driver="ENVI",
                 wavelengths=np.linspace(450, 900, BANDS))
    header, data = (folder / "base.hdr").read_text(), (folder / "base.bsq").read_bytes()
    for leftover in folder.glob("base.*"):
        leftover.unlink()
    return header, data


# --- mutations -------------------------------------------------------------------------------

def tiff_entries(data: bytes) -> dict[int, int]:
    """{tag: byte offset of its 12-byte entry} in the first IFD of a little-endian classic TIFF."""
    if data[:4] != b"II*\x00":
        return {}
    ifd = struct.unpack_from("<I", data, 4)[0]
    count = struct.unpack_from("<H", data, ifd)[0]
    return {struct.unpack_from("<H", data, ifd + 2 + 12 * i)[0]: ifd + 2 + 12 * i for i in range(count)}


def set_tag(data: bytes, tag: int, value: int) -> bytes:
    """The TIFF with the (inline) value of `tag` replaced, keeping its field type."""
    entry = tiff_entries(data).get(tag)
    if entry is None:
        return data
    out = bytearray(data)
    kind = struct.unpack_from("<H", out, entry + 2)[0]
    if kind == 3:  # SHORT
        struct.pack_into("<H", out, entry + 8, value & 0xFFFF)
    else:
        struct.pack_into("<I", out, entry + 8, value & 0xFFFFFFFF)
    return bytes(out)


def mutate_tiff(data: bytes, rng: np.random.Generator) -> tuple[str, bytes]:
    kind = rng.choice(["truncate", "flip_header", "flip_any", "absurd_size", "band_count", "pixel_type"])
    out = bytearray(data)
    if kind == "truncate":
        return kind, data[: int(rng.integers(0, len(data)))]
    if kind == "flip_header":
        for _ in range(int(rng.integers(1, 5))):
            out[int(rng.integers(0, min(512, len(out))))] ^= 1 << int(rng.integers(0, 8))
        return kind, bytes(out)
    if kind == "flip_any":
        for _ in range(int(rng.integers(1, 9))):
            out[int(rng.integers(0, len(out)))] = int(rng.integers(0, 256))
        return kind, bytes(out)
    if kind == "absurd_size":
        tag = TIFF_TAGS[str(rng.choice(["width", "height"]))]
        return kind, set_tag(data, tag, int(rng.choice([0, 1, 7, 65535, 2**31 - 1, 2**32 - 1])))
    if kind == "band_count":
        return kind, set_tag(data, TIFF_TAGS["samples"], int(rng.choice([0, 1, 2, 3, BANDS + 1, 1000, 65535])))
    tag = TIFF_TAGS[str(rng.choice(["bits", "format", "compression", "rows_per_strip"]))]
    return kind, set_tag(data, tag, int(rng.choice([0, 1, 2, 3, 5, 8, 12, 16, 64, 999])))


ENVI_EDITS = {
    "samples": ["0", "1", "-4", "31", "33", "100000", "two"],
    "lines": ["0", "1", "-1", "31", "64", "2147483647"],
    "bands": ["0", "1", "2", "3", str(BANDS + 1), "100000"],
    "data type": ["1", "2", "3", "5", "12", "13", "99", "x"],
    "byte order": ["1", "7"],
    "header offset": ["1", "4096", "-8", "999999999"],
    "interleave": ["bil", "bip", "xyz"],
    "wavelength": ["{1, 2}", "{a, b, c}", "{" + ", ".join(["nan"] * BANDS) + "}"],
}


def mutate_envi(header: str, data: bytes, rng: np.random.Generator) -> tuple[str, str, bytes]:
    kind = rng.choice(["edit", "edit", "truncate_data", "drop_line", "flip_data"])
    if kind == "truncate_data":
        return str(kind), header, data[: int(rng.integers(0, len(data)))]
    if kind == "flip_data":
        out = bytearray(data)
        for _ in range(int(rng.integers(1, 50))):
            out[int(rng.integers(0, len(out)))] = 0xFF  # NaN-ish float bytes, huge values
        return str(kind), header, bytes(out)
    lines = header.splitlines()
    if kind == "drop_line":
        del lines[int(rng.integers(1, len(lines)))]
        return str(kind), "\n".join(lines) + "\n", data
    key = str(rng.choice(list(ENVI_EDITS)))
    value = str(rng.choice(ENVI_EDITS[key]))
    lines = [line for line in lines if not line.split("=")[0].strip() == key]
    lines.append(f"{key} = {value}")
    return f"edit {key}={value}", "\n".join(lines) + "\n", data


def nan_cube(index: int, rng: np.random.Generator) -> tuple[str, np.ndarray]:
    cube = smooth_cube(BANDS, SIDE, SIDE, seed=index)
    kind = ["all_nan", "all_inf", "band_inf", "checker_nan", "rows_nan", "minus_inf_pixel", "most_nan",
            "huge_values", "all_but_two_bands_nan", "tiny_values"][index % 10]
    if kind == "all_nan":
        cube[:] = np.nan
    elif kind == "all_inf":
        cube[:] = np.inf
    elif kind == "band_inf":
        cube[int(rng.integers(0, BANDS))] = np.inf
    elif kind == "checker_nan":
        cube[:, ::2, ::2] = np.nan
    elif kind == "rows_nan":
        cube[:, int(rng.integers(0, SIDE))::3] = np.nan
    elif kind == "minus_inf_pixel":
        cube[:, int(rng.integers(0, SIDE)), int(rng.integers(0, SIDE))] = -np.inf
    elif kind == "most_nan":
        cube[:, rng.random((SIDE, SIDE)) < 0.97] = np.nan
    elif kind == "huge_values":
        cube *= np.float32(3e38)
    elif kind == "all_but_two_bands_nan":
        cube[2:] = np.nan
    else:
        cube *= np.float32(1e-38)
    return kind, cube


def make_cases(folder: Path) -> list[dict]:
    """Write every mutated file, each in its own folder with an empty out/ beside it."""
    rng = np.random.default_rng(SEED)
    folder.mkdir(exist_ok=True)
    striped, tiled = base_tiff(folder / "striped.tif", False), base_tiff(folder / "tiled.tif", True)
    header, data = base_envi(folder)
    cases = []

    def new_case(kind: str, name: str) -> Path:
        case = folder / f"case{len(cases):03d}"
        (case / "out").mkdir(parents=True)
        cases.append({"dir": str(case), "input": str(case / name), "kind": kind})
        return case

    for _ in range(TIFF_CASES):
        base = striped if rng.random() < 0.5 else tiled
        kind, mutated = mutate_tiff(base, rng)
        (new_case(("striped " if base is striped else "tiled ") + kind, "scene.tif") / "scene.tif").write_bytes(mutated)
    for _ in range(ENVI_CASES):
        kind, mutated_header, mutated_data = mutate_envi(header, data, rng)
        case = new_case("envi " + kind, "scene.bsq")
        (case / "scene.hdr").write_text(mutated_header)
        (case / "scene.bsq").write_bytes(mutated_data)
    for index in range(NAN_CASES):
        kind, cube = nan_cube(index, rng)
        write_raster(new_case("values " + kind, "scene.tif") / "scene.tif", cube)
    for base in ("striped.tif", "tiled.tif"):
        (folder / base).unlink()
    return cases


# --- the runner (a separate process) ---------------------------------------------------------

RUNNER = r"""
import contextlib, hashlib, io, json, os, sys, traceback
from pathlib import Path

from damp_engine.checkpoint import load_model
from damp_engine.cli import main
from damp_engine.errors import DampInputError
from damp_engine.tiling import restore_raster

def files(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(folder).rglob("*")) if p.is_file()}

def cli(*argv):
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, err.getvalue()

model = load_model(None, device="cpu")
cases = json.load(open(sys.argv[1]))
for index, case in enumerate(cases):
    folder, out = Path(case["dir"]), Path(case["dir"]) / "out" / "restored.tif"
    before = files(folder)
    result = {"case": index, "kind": case["kind"]}
    result["prompt"], result["prompt_err"] = cli("prompt", case["input"])
    if index % 10 == 0:
        result["restore"], result["restore_err"] = cli("restore", case["input"], out, "--tile", "32",
                                                       "--device", "cpu")
    else:
        try:
            restore_raster(case["input"], out, model=model, tile=32)
            result["restore"], result["restore_err"] = 0, ""
        except DampInputError as exc:
            result["restore"], result["restore_err"] = 2, f"damp: error: {exc}\n"
        except BaseException:
            result["restore"], result["restore_err"] = "exception", traceback.format_exc()
    after = files(folder)
    restored = [name for name in after if name.startswith("out" + os.sep)]
    result["new_files"] = sorted(set(after) - set(before) - set(restored if result["restore"] == 0 else []))
    result["inputs_changed"] = sorted(name for name in before if after.get(name) != before[name])
    result["hidden"] = sorted(str(p) for p in folder.rglob(".*"))
    for name in restored:
        (folder / name).unlink()
    print(json.dumps(result), flush=True)
"""


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> list[dict]:
    folder = tmp_path_factory.mktemp("fuzz")
    cases = make_cases(folder / "cases")
    (folder / "cases.json").write_text(json.dumps(cases))
    done = subprocess.run([sys.executable, "-c", RUNNER, str(folder / "cases.json")], cwd=ROOT,
                          capture_output=True, text=True, timeout=3000,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": "1", "DAMP_TRACEBACK": ""})
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert done.returncode == 0 and len(lines) == len(cases), (
        f"the runner died (exit {done.returncode}) after {len(lines)} of {len(cases)} cases; next: "
        f"{cases[len(lines)]['kind'] if len(lines) < len(cases) else '-'}\n{done.stderr[-3000:]}")
    return lines


def one_sentence(code, err: str) -> bool:
    if code == 0:
        return True
    return code == 2 and err.startswith("damp: error: ") and err.count("\n") == 1 and "Traceback" not in err


def test_there_are_a_few_hundred_cases_of_every_kind(results):
    kinds = {r["kind"].split()[1] if not r["kind"].startswith("envi edit") else "edit" for r in results}
    assert len(results) >= 200
    assert {"truncate", "flip_header", "absurd_size", "band_count", "truncate_data", "edit", "all_nan"} <= kinds


def test_prompt_succeeds_or_says_one_sentence(results):
    bad = [(r["kind"], r["prompt"], r["prompt_err"][-500:]) for r in results
           if not one_sentence(r["prompt"], r["prompt_err"])]
    assert not bad


def test_restore_succeeds_or_says_one_sentence(results):
    bad = [(r["kind"], r["restore"], r["restore_err"][-800:]) for r in results
           if not one_sentence(r["restore"], r["restore_err"])]
    assert not bad


def test_nothing_is_left_behind_and_no_input_changes(results):
    bad = [(r["kind"], r["new_files"], r["hidden"], r["inputs_changed"]) for r in results
           if r["new_files"] or r["hidden"] or r["inputs_changed"]]
    assert not bad


def test_mutations_are_really_refused_not_only_accepted(results):
    """The fuzz exercises the error paths: many cases are refused, by prompt and by restore."""
    assert sum(r["prompt"] == 2 for r in results) > 50
    assert sum(r["restore"] == 2 for r in results) > 50
