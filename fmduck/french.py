"""Ken French's data library files as downloaded: a few description lines, then blocks separated by
blank lines, each an optional title line (``  Average Equal Weighted Returns -- Monthly``), a header
whose first cell is empty (``,Mkt-RF,SMB,HML,RF``) and rows keyed by a period of one length
(``192607,    2.96,   -2.56,   -2.43,    0.22``: YYYYMM; YYYY in an annual block, YYYYMMDD in a
daily file), and a copyright line at the end. Missing values are written -99.99 or -999.

:func:`layout` finds the blocks; any other file (no such header within the first lines, or rows of
the header's shape above it) is None and keeps its ordinary reading. :func:`write_block` writes one
block as a plain CSV file (cells trimmed, -99.99 and -999 left empty) that ``fmduck.load`` reads as
any file, and :func:`note` says what was read and what was left out.
"""

from __future__ import annotations

import csv
import gzip
import re
from dataclasses import dataclass
from pathlib import Path

from fmduck.errors import SpecError

SCAN_LINES = 200  # the first header must be within these lines
PERIOD_DIGITS = {4: "annual", 6: "monthly", 8: "daily"}
MISSING_CODES = (-99.99, -999.0)
_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


@dataclass(frozen=True)
class Block:
    """One block: its number (from 1), title ('' when none), header cells and rows (cells trimmed)."""

    number: int
    title: str
    header: list[str]
    rows: list[list[str]]

    @property
    def frequency(self) -> str:
        return PERIOD_DIGITS[len(self.rows[0][0])]

    @property
    def returns(self) -> bool:
        """Returns or factors (in percent), not counts, sizes or ratios: untitled, or a title saying so."""
        return not self.title or bool(re.search(r"return|factor", self.title, re.IGNORECASE))

    def name(self) -> str:
        return f'block {self.number} "{self.title}"' if self.title else f"block {self.number}"

    def size(self) -> str:
        return f"{self.frequency}, {_count(len(self.rows), 'row')}"


@dataclass(frozen=True)
class Layout:
    """A Ken French file: its blocks, the description lines above the first block and the other
    non-blank lines that belong to no block (the copyright line)."""

    blocks: list[Block]
    description: int
    other: list[str]

    def choose(self, block: str | int | None, source: str) -> Block:
        """The block named by ``--block``: its number or its title (case and spaces free; a part of one
        title will do); None: the first."""
        if block is None:
            return self.blocks[0]
        text = " ".join(str(block).split()).lower()
        if text.isdigit() and 1 <= int(text) <= len(self.blocks):
            return self.blocks[int(text) - 1]
        exact = [b for b in self.blocks if " ".join(b.title.split()).lower() == text]
        partial = [b for b in self.blocks if text and text in b.title.lower()]
        if exact or len(partial) == 1:
            return (exact or partial)[0]
        raise SpecError(f"{source}: --block {block!r} names no block; it has {self.listing()}")

    def listing(self) -> str:
        return "; ".join(f"{b.name()} ({b.size()})" for b in self.blocks)


def layout(path: Path) -> Layout | None:
    """The blocks of a Ken French file; None when ``path`` is not laid out that way."""
    with _open(path) as handle:
        head = [line for _, line in zip(range(SCAN_LINES), handle)]
    lines = [_cells(line) for line in head]
    first = next((i for i in range(len(lines) - 1) if _header_at(lines, i)), None)
    if first is None:
        return None
    width, digits = len(lines[first]), len(lines[first + 1][0].strip())
    if any(_is_row(cells, width, digits) for cells in lines[:first]):
        return None  # rows above the header: an ordinary file with a NULL in its first column
    with _open(path) as handle:
        lines = [_cells(line) for line in handle]
    blocks: list[Block] = []
    description = 0
    loose: list[tuple[int, str]] = []  # (line index, text) of non-blank lines outside any block
    i = 0
    while i < len(lines):
        if not _header_at(lines, i):
            text = ",".join(lines[i]).strip()
            if text:
                loose.append((i, text))
            i += 1
            continue
        header = [c.strip() for c in lines[i]]
        width, digits = len(header), len(lines[i + 1][0].strip())
        end = i + 1
        while end < len(lines) and _is_row(lines[end], width, digits):
            end += 1
        title = loose.pop()[1] if loose and loose[-1][0] == i - 1 else ""
        blocks.append(Block(len(blocks) + 1, title, header, [[c.strip() for c in row] for row in lines[i + 1:end]]))
        if len(blocks) == 1:
            description, loose = len(loose), []
        i = end
    return Layout(blocks, description, [text for _, text in loose])


def write_block(block: Block, path: Path) -> int:
    """``block`` as a plain CSV file (the header's first cell left empty); return how many values were
    -99.99 or -999 (written empty: NULL)."""
    missing = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(block.header)
        for row in block.rows:
            cells = [row[0]]
            for cell in row[1:]:
                if _NUMBER.match(cell) and float(cell) in MISSING_CODES:
                    missing += 1
                    cell = ""
                cells.append(cell)
            writer.writerow(cells)
    return missing


def note(source: str, found: Layout, chosen: Block, missing: int) -> str | None:
    """What was read and what was left out; None when the file is one block and nothing else."""
    left = [_count(found.description, "description line")] if found.description else []
    left += [f"{b.name()} ({b.size()})" for b in found.blocks if b is not chosen]
    if found.other:
        shown = found.other[-1] if len(found.other[-1]) <= 60 else found.other[-1][:57] + "..."
        left.append(f"{_count(len(found.other), 'other line')} ({shown})")
    if not left and not missing:
        return None
    first, last = chosen.rows[0][0], chosen.rows[-1][0]
    text = f"{source}: Ken French layout: read {chosen.name()} ({chosen.size()}, {first}–{last})"
    if left:
        text += "; skipped " + (", ".join(left[:-1]) + " and " + left[-1] if len(left) > 1 else left[0])
    if len(found.blocks) > 1:
        text += "; --block N or --block TITLE reads another block"
    if missing:
        text += f"; {_count(missing, 'value')} of -99.99 or -999 (missing) read as NULL"
    return text


def blank_first_header(path: Path) -> bool:
    """The first line's first cell is empty (Ken French's header), whatever follows."""
    with _open(path) as handle:
        line = handle.readline()
    delimiter = "\t" if ".tsv" in path.suffixes or line.count("\t") > line.count(",") else ","
    header = next(csv.reader([line], delimiter=delimiter), [""])
    return not header or header[0].strip() == ""


# ------------------------------------------------------------------ lines
def _count(n: int, word: str) -> str:
    return f"{n:,} {word}{'s' * (n != 1)}"


def _open(path: Path):  # noqa: ANN202 - a text file handle
    if path.suffix == ".gz":
        return gzip.open(path, "rt", newline=None, encoding="utf-8", errors="replace")
    return path.open(newline=None, encoding="utf-8", errors="replace")


def _cells(line: str) -> list[str]:
    return next(csv.reader([line.rstrip("\r\n")]), [])


def _header_at(lines: list[list[str]], i: int) -> bool:
    """A header: an empty first cell, names (not numbers) after it, and a row of its shape below."""
    cells = lines[i]
    if len(cells) < 2 or cells[0].strip() or i + 1 >= len(lines):
        return False
    if not all(c.strip() and not _NUMBER.match(c.strip()) for c in cells[1:]):
        return False
    digits = len(lines[i + 1][0].strip()) if lines[i + 1] else 0
    return digits in PERIOD_DIGITS and _is_row(lines[i + 1], len(cells), digits)


def _is_row(cells: list[str], width: int, digits: int) -> bool:
    """A row of a block: ``width`` cells, the first a period of ``digits`` digits."""
    if len(cells) != width:
        return False
    period = cells[0].strip()
    return len(period) == digits and period.isdigit()
