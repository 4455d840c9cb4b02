"""Small Markdown builders shared by the generated documentation pages."""

from __future__ import annotations

REGENERATE = "python -m pipelines.docs"


def code(text: str) -> str:
    fence = "``" if "`" in text else "`"
    pad = " " if fence == "``" else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def cell(text: str) -> str:
    return text.replace("\n", " ").replace("|", "\\|")


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def generated_note(sources: str) -> str:
    return (
        f"> **Generated** by `{REGENERATE}` from {sources}; do not edit by hand. "
        f"`{REGENERATE} --check` fails when this page no longer matches the code."
    )
