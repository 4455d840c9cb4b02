"""How wide a chart's text is drawn, without a font engine: per-character advance widths, so a
chart can leave its labels the room they need instead of a fixed margin that clips long ones.

The charts name their fonts (svg.FONT_FAMILY): DejaVu Sans (most Linux desktops and headless
Chromium), then Arial / Liberation Sans / Helvetica (Windows, macOS; metrically alike). Each
width below is the wider of DejaVu Sans and Liberation Sans for that character, in thousandths of
an em, rounded up (read from the fonts' ``hmtx`` tables; tests/reports/test_reports.py checks them
against the font files when those are installed). A character outside the table counts as a full
em, wider than any glyph listed, so an unexpected character can only leave too much room. Kerning
only ever narrows a run of text, so a measured width is an upper bound of the drawn one.
"""

from __future__ import annotations

_FIRST = 32  # the tables start at the space and run through "~" (126), then EXTRA
EXTRA = "●–—…×−≤≥·°µ"
_REGULAR = (
    "318 401 460 838 637 951 780 275 391 391 500 838 318 361 318 337 637 637 637 637 637 637 637 "
    "637 637 637 337 337 838 838 838 557 1016 685 687 723 771 667 611 778 752 295 500 667 558 863 "
    "749 788 667 788 723 667 611 732 685 989 686 667 686 391 337 391 838 557 500 613 635 550 635 "
    "616 353 635 634 278 278 580 278 975 634 612 635 635 412 521 393 634 592 818 592 592 525 637 "
    "337 637 838 873 557 1000 1000 838 838 838 838 318 500 637"
)
_BOLD = (
    "349 457 521 838 696 1002 873 307 458 458 523 838 380 416 380 366 696 696 696 696 696 696 696 "
    "696 696 696 400 400 838 838 838 611 1000 774 763 734 831 684 684 821 837 373 557 775 638 996 "
    "837 851 733 851 771 721 683 813 774 1104 771 725 726 458 366 458 838 557 500 675 716 593 716 "
    "679 436 716 712 343 343 666 343 1042 712 688 716 716 494 596 479 712 652 924 646 652 583 712 "
    "366 712 838 873 557 1000 1000 838 838 838 838 380 500 736"
)
UNKNOWN = 1000  # a character not in the table: a full em


def _table(widths: str) -> dict[str, int]:
    chars = [chr(c) for c in range(_FIRST, 127)] + list(EXTRA)
    values = [int(w) for w in widths.split()]
    if len(values) != len(chars):
        raise ValueError(f"width table has {len(values)} entries for {len(chars)} characters")
    return dict(zip(chars, values, strict=True))


REGULAR = _table(_REGULAR)
BOLD = _table(_BOLD)


def text_width(text: str, font_size: float, *, bold: bool = False) -> float:
    """The width, in the same unit as ``font_size`` (px), that ``text`` takes at most when drawn
    in the charts' font."""
    table = BOLD if bold else REGULAR
    return font_size * sum(table.get(ch, UNKNOWN) for ch in text) / 1000
