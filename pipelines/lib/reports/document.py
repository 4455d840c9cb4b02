"""What a report says, independent of how it is printed: sections of paragraphs, lists, tables
and charts. The Markdown and the HTML are two renderings of one Document (render.py), so they
cannot disagree on a number."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Code:
    """An identifier or a value taken from the data (a metric, a slice, an error code): printed
    literally, never read as markup."""

    text: str


@dataclass(frozen=True)
class Link:
    """An identifier from the data that links somewhere (a lake partition to the Dagster run that
    wrote it). ``href`` is an http(s) URL the caller built from a checked base
    (TELEMETRY_DAGSTER_URL); the renderers escape it."""

    text: str
    href: str

    def __post_init__(self) -> None:
        if not self.href.startswith(("http://", "https://")):
            raise ValueError(f"a report links only to http(s) URLs, not {self.href!r}")


Inline = str | Code | Link


@dataclass(frozen=True)
class Num:
    """A number as the report prints it (fmt.py), with the value it was printed from; ``key``
    names it in the HTML (``data-key``) so a reader or a test can find it."""

    text: str
    value: float | int | None
    key: str | None = None


Cell = str | Code | Link | Num


@dataclass(frozen=True)
class Paragraph:
    parts: tuple[Inline | Num, ...]

    def plain(self) -> str:
        return "".join(p if isinstance(p, str) else p.text for p in self.parts)


@dataclass(frozen=True)
class Items:
    """A numbered list."""

    items: tuple[Paragraph, ...]


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    empty: str = "none"  # printed instead of a table without rows


@dataclass(frozen=True)
class Chart:
    """An inline SVG (svg.py); the Markdown leaves it out, as the tables beside it hold its
    numbers."""

    svg: str


Block = Paragraph | Items | Table | Chart


@dataclass(frozen=True)
class Section:
    title: str
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class Document:
    title: str
    sections: tuple[Section, ...]
