"""The one escaping path per output target for text that comes from data or users.

Every name a report, an export or a summary shows (column, table, asset and run names, labels, the
stored SQL and spec JSON) is data: it reaches

- LaTeX only through :func:`tex` (directly, or inside :func:`tex_label` / :func:`tex_number` /
  :func:`tex_code`, which call it). Its output contains no character that can open or close a
  group, a math shift, a comment or a control sequence of the data's choosing: ``\\ { } $ & # ^ _ ~ %``
  become fixed escapes, control characters and characters pdfLaTeX cannot set become ``[U+XXXX]``.
  Results are :class:`Tex` strings; the report templates escape every other value by default;
- HTML through markupsafe (jinja autoescape; :func:`html_label` builds its markup with
  ``Markup.format``, which escapes the parts);
- matplotlib through :func:`mpl` / :func:`mpl_label` (no mathtext from data: ``$`` is escaped);
- a terminal or a text file through :func:`text` (control characters shown as ``\\xNN``);
- Markdown tables through :func:`md`;
- CSV cells a spreadsheet may open through :func:`csv_cell` (text starting with ``= + - @`` or a tab
  or carriage return gets a leading ``'``, so it is shown, not evaluated as a formula).

Labels: a raw name is shown exactly as it is (``log_size`` prints as ``log_size``). Only a label the
user gives (``--labels``) may carry a subscript: ``base_{sub}`` explicitly, or ``base_sub`` (the
text after the first ``_``), see :func:`parse_label`.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup


# ====================================================================== labels
@dataclass(frozen=True)
class Label:
    """A display name: ``base`` with an optional subscript ``sub`` (only from a user's label)."""

    base: str
    sub: str | None = None

    def __str__(self) -> str:
        return self.base if self.sub is None else f"{self.base}_{self.sub}"


def parse_label(text: str) -> Label:
    """A user's label: ``β_{MKT}`` or ``β_MKT`` -> Label('β', 'MKT'); without ``_`` no subscript."""
    explicit = re.fullmatch(r"(.*?)_\{(.*)\}", text, flags=re.DOTALL)
    if explicit:
        return Label(explicit.group(1), explicit.group(2))
    base, sep, sub = text.partition("_")
    return Label(base, sub) if sep and sub else Label(text)


def as_label(value: Label | str) -> Label:
    """A Label as is; a string is a user's label (parsed)."""
    return value if isinstance(value, Label) else parse_label(str(value))


# ====================================================================== LaTeX
class Tex(str):
    """LaTeX source fmduck produced (escaped data inside): templates insert it without escaping again."""


_GREEK = {
    "α": r"\alpha", "β": r"\beta", "γ": r"\gamma", "δ": r"\delta", "ε": r"\varepsilon", "λ": r"\lambda",
    "μ": r"\mu", "π": r"\pi", "ρ": r"\rho", "σ": r"\sigma", "τ": r"\tau", "φ": r"\phi", "ω": r"\omega",
    "Γ": r"\Gamma", "Δ": r"\Delta", "Λ": r"\Lambda", "Σ": r"\Sigma", "Ω": r"\Omega", "⌊": r"\lfloor",
    "⌋": r"\rfloor", "²": r"^2", "±": r"\pm", "≥": r"\geq", "≤": r"\leq", "×": r"\times", "·": r"\cdot",
    "√": r"\surd", "°": r"^\circ", "÷": r"\div", "∞": r"\infty", "≠": r"\neq", "≈": r"\approx",
}
_PLAIN = {"−": "-", "′": "'", "\u0304": "", "\u00a0": "~"}  # minus, prime, combining macron (λ̄), nbsp
_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
    "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}",
    "|": r"\textbar{}", "[": "{[}", "]": "{]}",  # a bracket or star never opens an optional argument
}
# Characters pdfLaTeX sets with \usepackage[T1]{fontenc} (LaTeX's t1enc.dfu): Latin-1 letters, Latin
# Extended-A, a few punctuation marks. Anything else (CJK, Cyrillic, emoji...) is written [U+XXXX].
_T1 = set(range(0xC0, 0x100)) - {0xD7, 0xF7} | set(range(0x100, 0x180)) - {0x126, 0x127, 0x138, 0x13F, 0x140,
                                                                           0x149, 0x166, 0x167, 0x17F}
_T1 |= {0xA1, 0xA3, 0xAB, 0xBB, 0xBF, 0x2013, 0x2014, 0x2018, 0x2019, 0x201C, 0x201D}
_LIGATURES = set("-'`,!?")  # --, '', ``, ,, !` ?` would merge into one glyph
UNICODE_NOTE = ("Characters that pdfLaTeX cannot set with the T1 fonts (e.g. CJK) are written as their code "
                "points, [U+XXXX]; the HTML and text reports show them as they are.")


# a floor expression with a power, as in the Newey-West lag rule ⌊4(T/100)^(2/9)⌋: set in math mode
# (a text-mode caret needs a font a basic TeX install may lack); only these plain characters inside
_FLOOR_POWER = re.compile(r"⌊([0-9A-Za-z().+\-*/ ]+)\^[({]([0-9A-Za-z.+\-*/]+)[)}]⌋")


def tex(value: Any, *, code: bool = False) -> Tex:
    """Text for LaTeX (the one escaping function): specials escaped, Greek and a few symbols as math,
    a floor-of-a-power expression (the NW lag rule) in math mode, Latin letters as they are, every
    other character as ``[U+XXXX]``; ``code=True`` keeps runs of spaces (for ``\\ttfamily`` lines)."""
    text = unicodedata.normalize("NFC", str(value))
    if not code and "⌊" in text:
        pieces, last = [], 0
        for match in _FLOOR_POWER.finditer(text):
            pieces.append(_tex_chars(text[last:match.start()], code))
            pieces.append(f"\\ensuremath{{\\lfloor {match.group(1)}^{{{match.group(2)}}}\\rfloor}}")
            last = match.end()
        pieces.append(_tex_chars(text[last:], code))
        return Tex("".join(pieces))
    return Tex(_tex_chars(text, code))


def _tex_chars(text: str, code: bool) -> str:
    out: list[str] = []
    for i, ch in enumerate(text):
        cp = ord(ch)
        if ch in _SPECIAL:
            piece = _SPECIAL[ch]
        elif ch in " \t\n\r":
            piece = "~" if code else " "
        elif cp < 0x20 or cp == 0x7F:
            piece = f"{{[}}U+{cp:04X}{{]}}"
        elif cp < 0x80:
            piece = ch
        elif ch in _GREEK:
            piece = f"\\ensuremath{{{_GREEK[ch]}}}"
        elif ch in _PLAIN:
            piece = _PLAIN[ch]
        elif cp in _T1:
            piece = ch
        else:
            piece = f"{{[}}U+{cp:04X}{{]}}"
        if ch in _LIGATURES and i + 1 < len(text) and text[i + 1] in _LIGATURES:
            piece += "{}"
        out.append(piece)
    if text.startswith("*"):  # after a row's \\\\ a star would be read as \\\\*
        out.insert(0, "{}")
    return "".join(out)


def tex_unsupported(value: Any) -> bool:
    """Whether :func:`tex` writes some character of ``value`` as a code point (the report then says so)."""
    for ch in unicodedata.normalize("NFC", str(value)):
        cp = ord(ch)
        if cp >= 0x80 and ch not in _GREEK and ch not in _PLAIN and cp not in _T1:
            return True
    return False


_MATH_SAFE = re.compile(r"[A-Za-z0-9 .,:;!?()+\-*/=_&%#${}]*")


def tex_label(label: Label | str) -> Tex:
    """``β_MKT`` -> ``$\\beta_{\\mathrm{MKT}}$``; ``size_t`` -> ``size$_{\\mathrm{t}}$``; no subscript:
    escaped text. A subscript with characters that are not plain in math mode is set as text."""
    label = as_label(label)
    if label.sub is None:
        return tex(label.base)
    if _MATH_SAFE.fullmatch(label.sub):
        sub = "\\mathrm{" + tex(label.sub).replace(" ", "\\ ") + "}"
    else:
        sub = "\\mbox{\\scriptsize " + tex(label.sub) + "}"
    greek = _GREEK.get(label.base) if len(label.base) == 1 else None
    if greek is not None:
        return Tex(f"${greek}_{{{sub}}}$")
    return Tex(f"{tex(label.base)}$_{{{sub}}}$")


def tex_number(cell: str) -> Tex:
    """A formatted cell (``fmduck.formatting.fmt``) for LaTeX: a math minus and superscript stars."""
    match = re.fullmatch(r"(\(?)(-?)([0-9.,]*)(\)?)(\**)", cell)
    if not match:
        return tex(cell)
    lpar, minus, digits, rpar, marks = match.groups()
    return Tex(lpar + ("$-$" if minus else "") + digits + rpar + (f"$^{{{marks}}}$" if marks else ""))


def tex_code(text: str, width: int = 88) -> Tex:
    """SQL or JSON as typewriter lines, one ``\\fmduckcode{...}`` per line (long lines wrapped): every
    line escaped by :func:`tex`, so no content can end the block. The macro is defined in report.tex.j2."""
    lines = []
    for line in str(text).splitlines():
        while len(line) > width:
            lines.append(line[:width])
            line = "    " + line[width:]
        lines.append(line)
    return Tex("\n".join(f"\\fmduckcode{{{tex(line, code=True)}}}" for line in lines))


# ====================================================================== HTML
def html_label(label: Label | str) -> Markup:
    """A label as HTML: ``β<sub>MKT</sub>``; every part escaped."""
    label = as_label(label)
    if label.sub is None:
        return Markup("{}").format(label.base)
    return Markup("{}<sub>{}</sub>").format(label.base, label.sub)


# ====================================================================== matplotlib, text, Markdown
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _visible_controls(value: Any) -> str:
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(value))


def mpl(value: Any) -> str:
    """Text for matplotlib shown literally: no mathtext (``$`` escaped), one line, visible control
    characters, and a leading ``_`` kept visible in legends (matplotlib hides such labels)."""
    text = _visible_controls(value).replace("\t", " ").replace("\n", " ").replace("$", r"\$")
    return " " + text if text.startswith("_") else text


_MPL_SUB = re.compile(r"[A-Za-z0-9 .,:;!?()+\-*/=]+")


def mpl_label(label: Label | str) -> str:
    """A label for matplotlib: a plain subscript as mathtext ``$_{\\mathrm{...}}$``, anything else literal."""
    label = as_label(label)
    if label.sub is None:
        return mpl(label.base)
    if not _MPL_SUB.fullmatch(label.sub) or label.base.endswith("\\"):
        return mpl(str(label))
    return mpl(label.base) + "$_{\\mathrm{" + label.sub.replace(" ", "\\ ") + "}}$"


def text(value: Any) -> str:
    """Text for a terminal or a text file: control characters shown as ``\\xNN`` (no terminal escapes)."""
    return _visible_controls(value)


# what can start markup inside a table cell (emphasis, code, links, HTML, entities, strike, the cell break);
# ( ) # + ! are left alone: without an unescaped [ or a line start they are plain text
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>&|~])")


def md(value: Any) -> str:
    """A Markdown table cell: Markdown specials and ``|`` backslash-escaped, one line."""
    one_line = _visible_controls(value).replace("\r\n", " ").replace("\n", " ").replace("\r", " ")
    return _MD_SPECIAL.sub(r"\\\1", one_line)


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A text cell of a CSV file: one that a spreadsheet would read as a formula (``=HYPERLINK(...)``,
    ``+1``, ``@SUM``) is prefixed with ``'``; numbers and other text are unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def csv_column(name: str) -> Any:
    """:func:`csv_cell` over a text column of a polars frame (a vectorised expression)."""
    import polars as pl

    col = pl.col(name)
    pattern = "^[" + re.escape("".join(FORMULA_START)) + "]"
    return pl.when(col.str.contains(pattern)).then(pl.lit("'") + col).otherwise(col).alias(name)
