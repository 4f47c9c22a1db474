"""A tiny document model (headings, paragraphs, tables, figures) rendered to Markdown, one
self-contained HTML file, CSV and LaTeX. Deterministic: no dates, stable ordering."""

from __future__ import annotations

import base64
import html
import math
import re
from dataclasses import dataclass, field

import pandas as pd


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Para:
    text: str


@dataclass(frozen=True)
class Table:
    """``shown`` is rendered in the report and the .tex file; ``data`` (numbers) goes to CSV."""

    name: str
    caption: str
    shown: pd.DataFrame
    data: pd.DataFrame | None = None
    index: bool = True


@dataclass(frozen=True)
class Figure:
    name: str
    caption: str
    png: bytes = field(repr=False)


Block = Heading | Para | Table | Figure


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.1f}"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value)


def _rows(table: Table) -> tuple[list[str], list[list[str]]]:
    df = table.shown
    head = [str(c) for c in df.columns]
    body = [[_cell(v) for v in row] for row in df.itertuples(index=False, name=None)]
    if table.index:
        head = [str(df.index.name or ""), *head]
        body = [[_cell(i), *r] for i, r in zip(df.index, body, strict=True)]
    return head, body


# --- Markdown -------------------------------------------------------------------------------
def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def _md_table(table: Table) -> str:
    head, body = _rows(table)
    lines = ["| " + " | ".join(_md_escape(h) for h in head) + " |"]
    lines.append("|" + "|".join("---" for _ in head) + "|")
    lines += ["| " + " | ".join(_md_escape(c) for c in row) + " |" for row in body]
    return f"*{table.caption}*\n\n" + "\n".join(lines)


def to_markdown(title: str, blocks: list[Block]) -> str:
    parts = [f"# {title}"]
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"{'#' * block.level} {block.text}")
        elif isinstance(block, Para):
            parts.append(block.text)
        elif isinstance(block, Table):
            parts.append(_md_table(block))
        else:
            parts.append(f"![{block.caption}](figures/{block.name}.png)\n\n*{block.caption}*")
    return "\n\n".join(parts) + "\n"


# --- HTML -----------------------------------------------------------------------------------
CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1100px;
margin:2em auto;padding:0 1.2em;color:#222;line-height:1.45}
h1{border-bottom:2px solid #444;padding-bottom:.2em}
h2{margin-top:2em;border-bottom:1px solid #ccc;padding-bottom:.15em}
h3{margin-top:1.5em}
table{border-collapse:collapse;margin:.6em 0 1.4em;font-size:.92em}
caption{caption-side:top;text-align:left;font-style:italic;color:#555;padding-bottom:.3em}
th,td{border:1px solid #d0d0d0;padding:.28em .65em;white-space:nowrap}
th{background:#f0f0f0;text-align:center}
td{text-align:right;font-variant-numeric:tabular-nums}
td.t{text-align:left}
td:first-child{text-align:left;font-weight:600}
tbody tr:nth-child(even){background:#fafafa}
.scroll{overflow-x:auto}
figure{margin:1em 0 2em}
figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-style:italic;color:#555;font-size:.92em}
p.note{color:#444}
"""


_NUMERIC = re.compile(r"^[-+]?[\d.]+(±[\d.]+)?( \(n=\d+\))?%?$|^\[.*\]$|^\d+/\d+$")


def _td(text: str) -> str:
    """Numbers right-aligned (tabular figures), words left-aligned."""
    cls = "" if _NUMERIC.match(text) or not text else ' class="t"'
    return f"<td{cls}>{html.escape(text)}</td>"


def _html_table(table: Table) -> str:
    head, body = _rows(table)
    esc = html.escape
    out = [f'<div class="scroll"><table><caption>{esc(table.caption)}</caption><thead><tr>']
    out += [f"<th>{esc(h)}</th>" for h in head]
    out.append("</tr></thead><tbody>")
    for row in body:
        out.append("<tr>" + "".join(_td(c) for c in row) + "</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def _html_figure(fig: Figure) -> str:
    data = base64.b64encode(fig.png).decode()
    cap = html.escape(fig.caption)
    return (
        f'<figure><img alt="{cap}" src="data:image/png;base64,{data}">'
        f"<figcaption>{cap}</figcaption></figure>"
    )


def to_html(title: str, blocks: list[Block]) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
        elif isinstance(block, Para):
            parts.append(f'<p class="note">{_inline(block.text)}</p>')
        elif isinstance(block, Table):
            parts.append(_html_table(block))
        else:
            parts.append(_html_figure(block))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _inline(text: str) -> str:
    """Markdown-ish `code` and **bold** in paragraphs, HTML-escaped otherwise."""
    out = html.escape(text)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)


# --- CSV and LaTeX --------------------------------------------------------------------------
def to_csv(table: Table) -> str:
    if table.data is not None:  # the numbers behind the shown table, in long form
        return table.data.to_csv(index=False, lineterminator="\n")
    return table.shown.to_csv(index=table.index, lineterminator="\n")


_TEX = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def _tex(text: str) -> str:
    out = "".join(_TEX.get(ch, ch) for ch in text)
    return out.replace("±", r"$\pm$").replace("×", r"$\times$").replace("–", "--")


def to_latex(table: Table) -> str:
    head, body = _rows(table)
    spec = "l" + "r" * (len(head) - 1)
    lines = [
        r"\begin{table}[ht]",
        r"\centering",
        rf"\caption{{{_tex(table.caption)}}}",
        rf"\label{{tab:{safe_name(table.name)}}}",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join(_tex(h) for h in head) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(_tex(c) for c in row) + r" \\" for row in body]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"
