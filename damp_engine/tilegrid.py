"""Where tiles go: the output tiles of a raster and the larger window read for each one.

A tile is restored from a read window that adds at least `halo` pixels of context on every side
that has any, and only the tile itself (the window's centre) is kept: the halo is cropped.
Read windows start on multiples of the network's size multiple (`DAMP.preset.size_multiple`,
the attention window times the total down-sampling) and span a whole number of them, so the
network partitions every tile into the same attention windows and down-sampling cells as it
would the whole raster. A window never extends past the raster: at the raster's edge the
network pads its input exactly as it pads a whole image, so tiles at the edge see what the
whole-image pass sees there.

All coordinates here are on the input grid. For super-resolution the network works on a grid
`factor` times finer; `align` then is the number of input pixels that map to a multiple of the
size multiple.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Sequence, TypeVar

T = TypeVar("T")



@dataclass(frozen=True)
class Window:
    """An output tile (x0, y0, w, h) and the window (rx, ry, rw, rh) read to restore it."""

    x0: int
    y0: int
    w: int
    h: int
    rx: int
    ry: int
    rw: int
    rh: int

    @property
    def read_shape(self) -> tuple[int, int]:
        """(rows, columns) of the read window; tiles of equal read shape can share a batch."""
        return (self.rh, self.rw)

    @property
    def area(self) -> int:
        return self.w * self.h

    def crop(self, factor: int = 1) -> tuple[slice, slice]:
        """(rows, columns) slices of the tile inside its read window, on a grid `factor` times finer."""
        top, left = (self.y0 - self.ry) * factor, (self.x0 - self.rx) * factor
        return slice(top, top + self.h * factor), slice(left, left + self.w * factor)


@dataclass(frozen=True)
class TileGrid:
    """Plans read windows for tiles of a `width` x `height` raster.

    halo:      context pixels wanted on each side (the planned halo can be larger, never smaller,
               except at the raster's edge).
    align:     read windows start at multiples of this and span a multiple of it.
    min_read:  smallest read window side (the degradation prompt needs some pixels), capped by
               the raster's size.
    """

    width: int
    height: int
    halo: int
    align: int = 1
    min_read: int = 1

    def _axis(self, start: int, tile: int, total: int) -> tuple[int, int]:
        """(first, length) of the read window along one axis for a tile starting at `start`.

        Tiles start at multiples of `tile`, so `start - halo` lies at most `phase` pixels past
        an aligned position, for the largest such phase over the tile grid; a span of
        tile + 2·halo + phase pixels, rounded up to the alignment, covers the tile and both
        halos for every tile, so all interior tiles have the same read shape (and batch
        together). With tile and halo multiples of the alignment the phase is 0.
        """
        a = self.align
        first = max(0, (start - self.halo) // a * a)
        phase = max((k * tile - self.halo) % a for k in range(a))
        span = math.ceil((tile + 2 * self.halo + phase) / a) * a
        end = min(total, first + span)
        if end - first < self.min_read:
            first = max(0, (end - self.min_read) // a * a)
        return first, end - first

    def plan(self, x0: int, y0: int, w: int, h: int, tile: int) -> Window:
        """The Window for output tile (x0, y0, w, h) of a grid of `tile`-pixel tiles."""
        rx, rw = self._axis(x0, tile, self.width)
        ry, rh = self._axis(y0, tile, self.height)
        return Window(x0, y0, w, h, rx, ry, rw, rh)

    def windows(self, tile: int) -> Iterator[Window]:
        """Every tile of the raster, row by row."""
        for y0 in range(0, self.height, tile):
            for x0 in range(0, self.width, tile):
                yield self.plan(x0, y0, min(tile, self.width - x0), min(tile, self.height - y0), tile)

    def split(self, window: Window, tile: int) -> list[Window]:
        """`window`'s tile cut into tiles of at most `tile` pixels, each with its own read window."""
        return [self.plan(x, y, min(tile, window.x0 + window.w - x), min(tile, window.y0 + window.h - y), tile)
                for y in range(window.y0, window.y0 + window.h, tile)
                for x in range(window.x0, window.x0 + window.w, tile)]


def spread(items: Sequence[T], count: int) -> list[T]:
    """Up to `count` of `items`, picked evenly from first to last (all of them if there are fewer)."""
    if len(items) <= count:
        return list(items)
    step = (len(items) - 1) / (count - 1) if count > 1 else 0
    return [items[round(i * step)] for i in range(count)]
