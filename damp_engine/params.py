"""The user's text inputs, parsed one way for the `damp` command and the QGIS algorithms alike.

Kept free of torch and GDAL, so that QGIS can check parameters without loading either. Errors
are `DampInputError` sentences that say what to write instead; the CLI turns them into exit 2,
the plugin into a QgsProcessingException.
"""
from __future__ import annotations

import json
import re
from typing import Any, Iterable

from .errors import DampInputError


def parse_bands(text: str | None) -> list[int] | None:
    """'1, 2, 130-135' → [1, 2, 130, 131, 132, 133, 134, 135]; empty or None → None.

    1-based band numbers and rising ranges, separated by commas, semicolons or spaces; the
    result is sorted and without repeats.
    """
    if text is None or not text.strip():
        return None
    bands: list[int] = []
    for item in re.split(r"[,;\s]+", re.sub(r"\s*-\s*", "-", text.strip())):
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", item)
        if not match:
            raise DampInputError(
                f"Bad bands: cannot read '{item}' in '{text}'. List 1-based band numbers and ranges, "
                "e.g. 1,2,130-135.")
        first, last = int(match[1]), int(match[2] or match[1])
        if not 1 <= first <= last:
            raise DampInputError(
                f"Bad bands: '{item}' is not a band number or a rising range; bands count from 1, e.g. 130-135.")
        bands.extend(range(first, last + 1))
    return sorted(set(bands))


def parse_parameters(text: str | Iterable[str] | None) -> dict[str, Any]:
    """'sigma=50, sigmas=[10, 30], extra=stripes' → {'sigma': 50, 'sigmas': [10, 30], 'extra': 'stripes'}.

    NAME=VALUE pairs separated by commas or semicolons (a comma inside a value, as in a list,
    does not split); a sequence of such texts (the CLI's repeated --param) is read item by item,
    later names winning. Values are read as JSON (numbers, lists) and otherwise kept as words.
    """
    if text is None:
        return {}
    if not isinstance(text, str):
        params: dict[str, Any] = {}
        for item in text:
            params.update(parse_parameters(item))
        return params
    params = {}
    for item in re.split(r"[,;]\s*(?=[A-Za-z_]\w*\s*=)", text.strip()):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise DampInputError(
                f"Bad degradation parameters: cannot read '{item.strip()}'. Write NAME=VALUE pairs "
                "separated by commas, e.g. sigma=50, ksize=9.")
        try:
            params[key.strip()] = json.loads(value.strip())
        except json.JSONDecodeError:
            params[key.strip()] = value.strip()
    return params
