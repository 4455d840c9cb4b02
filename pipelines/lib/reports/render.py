"""A Document as Markdown (the report.md file and the asset's metadata in the Dagster UI) and as
one self-contained HTML page (inline CSS and SVG; its Content-Security-Policy loads nothing else).
Text from the data is escaped in both: a bucket named ``<script>`` prints as those characters."""

from __future__ import annotations

from html import escape
from urllib.parse import quote

from pipelines.lib.docs import markdown
from pipelines.lib.reports.document import (
    Block,
    Cell,
    Chart,
    Code,
    Document,
    Items,
    Link,
    Num,
    Paragraph,
    Table,
)

STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 60em; color: #222; }
h1 { margin-bottom: 0.2em; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.6em 0; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code { background: #f3f3f3; padding: 0 0.2em; }
figure { margin: 0.8em 0; }
figure svg { max-width: 100%; height: auto; }
span[data-key="health_score"] { font-size: 2em; font-weight: bold; }
"""
CSP = "default-src 'none'; style-src 'unsafe-inline'"


def _href(url: str) -> str:
    """The URL with anything that could end a Markdown link or an HTML attribute encoded."""
    return quote(url, safe=":/?#@!$&*+,;=%~")


def _md_inline(part: str | Code | Link | Num) -> str:
    if isinstance(part, Code):
        return markdown.code(part.text)
    if isinstance(part, Link):
        return f"[{markdown.code(part.text)}]({_href(part.href)})"
    if isinstance(part, Num):
        return part.text
    return part


def _md_block(block: Block) -> str | None:
    if isinstance(block, Paragraph):
        return "".join(_md_inline(p) for p in block.parts)
    if isinstance(block, Items):
        return "\n".join(f"{n}. {_md_block(item)}" for n, item in enumerate(block.items, start=1))
    if isinstance(block, Table):
        if not block.rows:
            return f"_{block.empty}_"
        rows = [[_md_inline(c) for c in row] for row in block.rows]
        return markdown.table(list(block.header), rows)
    return None  # a chart: its numbers are in the tables beside it


def to_markdown(document: Document) -> str:
    parts = [f"# {document.title}"]
    for section in document.sections:
        parts.append(f"## {section.title}")
        parts += [text for b in section.blocks if (text := _md_block(b)) is not None]
    return "\n\n".join(parts) + "\n"


def _num_attributes(num: Num) -> str:
    attributes = ""
    if num.key is not None:
        attributes += f' data-key="{escape(num.key)}"'
    if num.value is not None:
        value = num.value if isinstance(num.value, int) else repr(float(num.value))
        attributes += f' data-value="{value}"'
    return attributes


def _html_inline(part: str | Code | Link | Num) -> str:
    if isinstance(part, Code):
        return f"<code>{escape(part.text)}</code>"
    if isinstance(part, Link):
        return f'<a href="{escape(_href(part.href))}"><code>{escape(part.text)}</code></a>'
    if isinstance(part, Num):
        return f'<span class="num"{_num_attributes(part)}>{escape(part.text)}</span>'
    return escape(part)


def _html_cell(cell: Cell) -> str:
    if isinstance(cell, Num):
        return f'<td class="num"{_num_attributes(cell)}>{escape(cell.text)}</td>'
    return f"<td>{_html_inline(cell)}</td>"


def _html_block(block: Block) -> str:
    if isinstance(block, Paragraph):
        return f"<p>{''.join(_html_inline(p) for p in block.parts)}</p>"
    if isinstance(block, Items):
        items = "".join(
            f"<li>{''.join(_html_inline(p) for p in item.parts)}</li>" for item in block.items
        )
        return f"<ol>{items}</ol>"
    if isinstance(block, Table):
        if not block.rows:
            return f"<p><em>{escape(block.empty)}</em></p>"
        head = "".join(f"<th>{escape(h)}</th>" for h in block.header)
        body = "".join(f"<tr>{''.join(_html_cell(c) for c in row)}</tr>" for row in block.rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    if isinstance(block, Chart):
        return f"<figure>{block.svg}</figure>"
    raise TypeError(f"not a report block: {block!r}")


def to_html(document: Document) -> str:
    sections = "".join(
        f"<section><h2>{escape(s.title)}</h2>{''.join(_html_block(b) for b in s.blocks)}</section>"
        for s in document.sections
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f"<title>{escape(document.title)}</title><style>{STYLE}</style></head>"
        f"<body><main><h1>{escape(document.title)}</h1>{sections}</main></body></html>\n"
    )
