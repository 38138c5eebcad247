"""What the reader of a report asked for: SE type, t or SE, labels, order, digits, sections, asset limit."""

from __future__ import annotations

from dataclasses import dataclass, field

from fmduck.errors import SpecError
from fmduck.escape import Label, parse_label

FORMATS = ("html", "tex", "txt")
SECTIONS = ("estimates", "first-pass", "lambdas", "plots", "appendix")
STAT_NAMES = {"t": "t-statistics", "se": "standard errors"}
DEFAULT_LABELS = {"const": "Constant"}
ASSET_LIMIT = 50  # above this many assets, per-asset tables and plots become distributions


@dataclass(frozen=True)
class ReportOptions:
    """Options of one rendering.

    ``labels`` map a term to the label shown (``β_MKT``: the text after ``_`` is a subscript, or
    ``β_{MKT}``); a term without a label is shown as its raw name, escaped, never with a subscript.
    ``sections`` picks the parts (``SECTIONS``; ``plots=False`` drops ``plots``). Runs with more
    than ``asset_limit`` assets get distributions instead of per-asset tables and plots, and the full
    per-asset table as a CSV file next to the report.
    """

    se_type: str = "fm"
    stat: str = "t"
    labels: dict[str, str] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    digits: int = 4
    plots: bool = True
    title: str | None = None
    sections: tuple[str, ...] = SECTIONS
    asset_limit: int = ASSET_LIMIT

    def __post_init__(self) -> None:
        if self.stat not in STAT_NAMES:
            raise SpecError(f"--stat must be t or se, got {self.stat!r}")
        if not 0 <= self.digits <= 12:
            raise SpecError(f"--digits must be between 0 and 12, got {self.digits}")
        sections = (self.sections.split(",") if isinstance(self.sections, str) else list(self.sections))
        sections = [s.strip() for s in sections if s.strip()]
        unknown = [s for s in sections if s not in SECTIONS]
        if unknown or not sections:
            raise SpecError(f"--sections takes a comma-separated list of {', '.join(SECTIONS)}; "
                            f"got {', '.join(unknown) or 'nothing'} (e.g. --sections estimates,lambdas)")
        if not self.plots:
            sections = [s for s in sections if s != "plots"]
        object.__setattr__(self, "sections", tuple(s for s in SECTIONS if s in sections))
        if self.asset_limit < 1:
            raise SpecError(f"asset_limit must be at least 1, got {self.asset_limit}")

    def shows(self, section: str) -> bool:
        return section in self.sections

    def label(self, term: str) -> Label:
        """The label of a term: the user's (parsed: may carry a subscript), a default, or the raw name."""
        if term in self.labels:
            return parse_label(self.labels[term])
        return Label(DEFAULT_LABELS.get(term, term))

    def beta_label(self, term: str) -> Label:
        """First-pass column labels: α for the intercept, the user's label, or ``β <raw name>``."""
        if term == "const":
            return Label("α")
        if term in self.labels:
            return parse_label(self.labels[term])
        return Label(f"β {term}")
