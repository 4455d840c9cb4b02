"""The reports' chart fonts as the font files define them: advance widths read straight from a
TrueType file's tables (cmap, hmtx), the oracle for "no chart label is clipped" that does not go
through the project's own width table (pipelines/lib/reports/textwidth.py)."""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

FONT_DIRS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"), Path.home() / ".fonts")
# The fonts the charts name (svg.FONT_FAMILY), regular and bold.
REGULAR_FILES = ("DejaVuSans.ttf", "LiberationSans-Regular.ttf", "Arial.ttf", "arial.ttf")
BOLD_FILES = ("DejaVuSans-Bold.ttf", "LiberationSans-Bold.ttf", "Arial Bold.ttf", "arialbd.ttf")
SVG = "{http://www.w3.org/2000/svg}"


@dataclass(frozen=True)
class Font:
    path: Path
    units_per_em: int
    advances: tuple[int, ...]
    glyph_of: dict[int, int]

    def advance(self, char: str) -> float | None:
        """The character's advance in ems; None when the font has no glyph for it."""
        glyph = self.glyph_of.get(ord(char))
        if glyph is None:
            return None
        return self.advances[min(glyph, len(self.advances) - 1)] / self.units_per_em

    def width(self, text: str, size: float) -> float:
        return size * sum(self.advance(c) or 1.0 for c in text)


def read_font(path: Path) -> Font:
    data = path.read_bytes()
    count = struct.unpack(">H", data[4:6])[0]
    tables = {}
    for i in range(count):
        tag, _, offset, _ = struct.unpack(">4sIII", data[12 + 16 * i : 28 + 16 * i])
        tables[tag.decode("latin-1")] = offset
    head, hhea, hmtx, cmap = (tables[t] for t in ("head", "hhea", "hmtx", "cmap"))
    units_per_em = struct.unpack(">H", data[head + 18 : head + 20])[0]
    metrics = struct.unpack(">H", data[hhea + 34 : hhea + 36])[0]
    advances = tuple(
        struct.unpack(">H", data[hmtx + 4 * i : hmtx + 4 * i + 2])[0] for i in range(metrics)
    )
    return Font(path, units_per_em, advances, _unicode_bmp_map(data, cmap))


def _array(data: bytes, start: int, count: int, fmt: str) -> tuple[int, ...]:
    return struct.unpack(f">{count}{fmt}", data[start : start + 2 * count])


def _unicode_bmp_map(data: bytes, cmap: int) -> dict[int, int]:
    """Code point -> glyph, from the Windows Unicode BMP subtable (format 4)."""
    subtables = struct.unpack(">H", data[cmap + 2 : cmap + 4])[0]
    for i in range(subtables):
        platform, encoding, offset = struct.unpack(
            ">HHI", data[cmap + 4 + 8 * i : cmap + 12 + 8 * i]
        )
        sub = cmap + offset
        if (platform, encoding) != (3, 1) or struct.unpack(">H", data[sub : sub + 2])[0] != 4:
            continue
        segments = struct.unpack(">H", data[sub + 6 : sub + 8])[0] // 2
        size = 2 * segments
        ends = _array(data, sub + 14, segments, "H")
        starts = _array(data, sub + 16 + size, segments, "H")
        deltas = _array(data, sub + 16 + 2 * size, segments, "h")
        range_at = sub + 16 + 3 * size
        ranges = _array(data, range_at, segments, "H")
        glyphs = {}
        for s in range(segments):
            for code in range(starts[s], ends[s] + 1):
                if code == 0xFFFF:
                    continue
                if ranges[s] == 0:
                    glyph = (code + deltas[s]) & 0xFFFF
                else:
                    at = range_at + 2 * s + ranges[s] + 2 * (code - starts[s])
                    glyph = struct.unpack(">H", data[at : at + 2])[0]
                    glyph = (glyph + deltas[s]) & 0xFFFF if glyph else 0
                glyphs[code] = glyph
        return glyphs
    raise ValueError("the font has no Unicode BMP cmap (format 4)")


@cache
def installed(bold: bool = False) -> tuple[Font, ...]:
    """The chart fonts installed here, read from their files."""
    names = BOLD_FILES if bold else REGULAR_FILES
    found = []
    for folder in FONT_DIRS:
        if folder.is_dir():
            found += [read_font(p) for name in names for p in sorted(folder.rglob(name))]
    return tuple(found)


def widest(bold: bool = False) -> Callable[[str, float], float]:
    """The width of a text in the widest installed chart font; skips the test without any."""
    fonts = installed(bold)
    if not fonts:
        pytest.skip("none of the charts' fonts (DejaVu Sans, Liberation Sans, Arial) installed")
    return lambda text, size: max(font.width(text, size) for font in fonts)


def clipped_texts(svg: str) -> list[str]:
    """Every <text> of ``svg`` that reaches beyond its viewBox horizontally, as drawn in the
    widest installed chart font: its x, anchor and font size from the SVG itself."""
    root = ET.fromstring(svg)
    _, _, width, _ = (float(v) for v in root.get("viewBox").split())
    regular, bold = widest(), widest(bold=True)
    problems = []
    for el in root.iter(f"{SVG}text"):
        style = dict(
            part.split(":", 1) for part in (el.get("style") or "").split(";") if ":" in part
        )
        size = float(style.get("font-size", "16px").removesuffix("px"))
        measure = bold if el.get("font-weight") == "bold" else regular
        drawn = measure(el.text or "", size)
        x = float(el.get("x"))
        anchor = el.get("text-anchor", "start")
        left = {"start": x, "middle": x - drawn / 2, "end": x - drawn}[anchor]
        if left < 0 or left + drawn > width:
            problems.append(f"{el.text!r}: {left:.1f}..{left + drawn:.1f} of 0..{width:.0f}")
    return problems
