"""A specification grid: many pass-2 specifications over the same panel from one scan.

``grid`` (TOML ``[[grid]]`` tables, or ``--grid "size; size,bm; size,bm,mom"``) lists
specifications by their characteristics, each a subset of ``chars`` (the union); betas on
``factor_cols``, when given, are in every specification. Each specification is stored as its own
run named ``<name>:<grid name>``.

One scan: the pass-2 moments of the union of regressors are computed once, grouped by period
*and missingness pattern* (a bitmask of which characteristics are non-NULL in the row; a NULL
characteristic enters the sums as 0). A specification's moments for a period are the sums over the
patterns that have all of its characteristics, restricted to its sub-block — so every row counts
for exactly the specifications whose regressors it has (listwise deletion per specification,
the same rows as a separate run). Pass 1 (betas) is also computed once (it does not depend on the
characteristics), and so are the input checks; the per-asset pricing errors and the tests are computed
per specification. With ``weights`` the scan sums raw weights and each specification
scales its periods to mean-1 weights (WLS is unchanged by a common scale within a period).
``absorb`` is not available with a grid (the demeaning depends on each specification's rows).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
from sqlglot import exp

from fmduck import templates
from fmduck.errors import SpecError
from fmduck.moments import Moments, Variable, render_moments
from fmduck.solve import MomentColumns

_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,60}$")


def parse_cli(text: str) -> list[dict[str, Any]]:
    """``"size; size,bm"`` -> [{"name": "m1", "chars": ["size"]}, {"name": "m2", "chars": ["size", "bm"]}]."""
    entries = [e.strip() for e in text.split(";") if e.strip()]
    return [{"name": f"m{i + 1}", "chars": [c.strip() for c in e.split(",") if c.strip()]}
            for i, e in enumerate(entries)]


def validate_grid(spec: Any) -> None:
    if not isinstance(spec.grid, list) or not spec.grid:
        raise SpecError("grid must be a non-empty list of specifications (TOML [[grid]] tables)")
    if spec.absorb:
        raise SpecError("a grid cannot use --absorb (the demeaning depends on each specification's rows; "
                        "run those specifications separately)")
    if spec.design != "twopass":
        raise SpecError(f"a grid runs two-pass specifications; design {spec.design!r} does not support it")
    names = []
    for i, entry in enumerate(spec.grid):
        if not isinstance(entry, dict):
            raise SpecError(f"grid entry {i + 1} must be a table with 'name' and 'chars', got {entry!r}")
        unknown = sorted(set(entry) - {"name", "chars"})
        if unknown:
            raise SpecError(f"grid entry {i + 1}: unknown key(s) {', '.join(unknown)}; use 'name' and 'chars'")
        name, chars = _entry(i, entry)
        if not _NAME.match(name):
            raise SpecError(f"grid entry {i + 1}: name {name!r} must be 1-60 letters, digits, '_', '-', '.'")
        names.append(name)
        missing = sorted(set(chars) - set(spec.chars))
        if missing:
            raise SpecError(f"grid entry {name!r}: {', '.join(missing)} not among the characteristics (--chars "
                            f"{', '.join(spec.chars) or 'none'}); --chars lists the union")
        if not chars and not spec.factor_cols:
            raise SpecError(f"grid entry {name!r} has no regressors")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise SpecError(f"grid names listed twice: {', '.join(dup)}")


def member_specs(spec: Any) -> list[Any]:
    """One Spec per grid entry (chars in the order of the union, grid cleared)."""
    out = []
    for i, entry in enumerate(spec.grid):
        name, chars = _entry(i, entry)
        pick = dict(winsorize=_subset(spec.winsorize, chars), standardize=_subset(spec.standardize, chars),
                    rank=_subset(spec.rank, chars))
        out.append(dataclasses.replace(spec, name=f"{spec.name}:{name}", chars=[c for c in spec.chars if c in chars],
                                       grid=None, **pick))
    return out


def _entry(i: int, entry: dict[str, Any]) -> tuple[str, list[str]]:
    """(name, characteristics) of grid entry ``i`` (``chars`` a list or a comma-separated string)."""
    chars = entry.get("chars") or []
    return (str(entry.get("name", f"m{i + 1}")),
            [c.strip() for c in chars.split(",")] if isinstance(chars, str) else list(chars))


def _subset(option: Any, chars: list[str]) -> Any:
    if isinstance(option, dict):
        return {k: v for k, v in option.items() if k in chars} or None
    if isinstance(option, (list, tuple)):
        return [c for c in option if c in chars]
    if isinstance(option, str):
        return [c for c in option.split(",") if c.strip() in chars]
    if option is True:
        return True if chars else False
    return option if (option is None or option is False) or chars else None


@dataclass
class SharedScan:
    """The union pass-2 moments by (period, missingness pattern), computed once by the first member."""

    union: Any  # the grid's Spec (chars = union)
    frame: pl.DataFrame | None = None
    names: list[str] = field(default_factory=list)  # variable names in the union scan (y last)
    n: np.ndarray | None = None
    sums: np.ndarray | None = None
    cross: np.ndarray | None = None
    shift: np.ndarray | None = None
    sum_w: np.ndarray | None = None

    pass1_result: tuple | None = None
    union_inputs: Any = None

    def inputs(self, model: Any) -> Any:
        """The input checks and profile of the union spec, once; each member keeps its characteristics."""
        from fmduck.model import FamaMacBeth

        if self.union_inputs is None:
            union = FamaMacBeth(dataclasses.replace(self.union, grid=None), model.engine)
            self.union_inputs = union._inputs()
        chars = set(model.spec.chars)
        return dataclasses.replace(self.union_inputs,
                                   chars_vars=[v for v in self.union_inputs.chars_vars if v.name in chars])

    def pass1(self, model: Any, inputs: Any, calendar: pl.DataFrame) -> tuple:
        """Pass 1 depends on the returns and factors only: the same betas for every member, computed once."""
        if self.pass1_result is None:
            self.pass1_result = model._pass1(inputs, calendar)
        return self.pass1_result

    def moments(self, model: Any, inputs: Any, regressors: list[Variable], source: dict[str, Any]) -> Moments:
        if self.frame is None:
            self._scan(model, inputs, regressors, source)
        spec = model.spec
        chars = list(spec.chars)
        union_chars = list(self.union.chars)
        need = sum(1 << union_chars.index(c) for c in chars)
        masks = self.frame["fmduck_mask"].to_numpy().astype(np.int64)
        rows = (masks & need) == need
        pidx = self.frame["pidx"].to_numpy()[rows]
        periods, inverse = np.unique(pidx, return_inverse=True)
        pick = [self.names.index(v.name) for v in regressors] + [len(self.names) - 1]
        g = len(periods)
        n = np.zeros(g)
        np.add.at(n, inverse, self.n[rows])
        sums = np.zeros((g, len(pick)))
        np.add.at(sums, inverse, self.sums[rows][:, pick])
        cross = np.zeros((g, len(pick), len(pick)))
        np.add.at(cross, inverse, self.cross[rows][:, pick][:, :, pick])
        if self.sum_w is not None:  # WLS: scale each period's weights to mean 1 (Σw = n), as a separate run does
            sum_w = np.zeros(g)
            np.add.at(sum_w, inverse, self.sum_w[rows])
            scale = n / sum_w
            sums *= scale[:, None]
            cross *= scale[:, None, None]
        frame = pl.DataFrame({"pidx": periods}).with_columns(pl.col("pidx").cast(self.frame.schema["pidx"]))
        return Moments(frame, n, sums, cross, self.shift[pick])

    def _scan(self, model: Any, inputs: Any, regressors: list[Variable], source: dict[str, Any]) -> None:
        from fmduck import prepare

        union = self.union
        n_beta = len(union.factor_cols)
        betas = regressors[:n_beta]  # the betas are the same in every member (same pass 1)
        built = prepare.build(union, inputs.returns, model.engine.dialect)
        scaled = {s["name"] for s in (built[2] if built else []) if s["scale"]}
        profiled = {v.name: v.shift for v in self.union_inputs.chars_vars}  # raw means, from inputs(): no second scan
        alias = "lagged" if union.char_lag else "p"
        chars = []
        for c in union.chars:
            raw = templates.column(c, alias)
            shift = 0.0 if c in scaled else profiled[c]
            # a NULL characteristic contributes 0 to every sum (v = shift - shift), its row still counts
            chars.append(Variable(c, exp.Coalesce(this=raw, expressions=[exp.Literal.number(repr(float(shift)))]),
                                  shift))
        mask: exp.Expression = exp.Literal.number(0)
        for i, c in enumerate(union.chars):
            bit = exp.Case(ifs=[exp.If(this=exp.Is(this=templates.column(c, alias), expression=exp.Null()),
                                       true=exp.Literal.number(0))], default=exp.Literal.number(1 << i))
            mask = exp.Add(this=mask, expression=bit)
        variables = [*betas, *chars, inputs.y]
        context, params = model._row_source(**source)
        if built is not None:
            context["returns"] = f"({built[0]})"
            params = {**params, **built[1]}
        context["extra_columns"] = [{"expr": templates.sql(mask), "alias": "fmduck_mask"}]
        if union.char_lag:
            context["char_lag"] = True
        keys = ["pidx", "fmduck_mask"]
        weighted = bool(context.get("weight"))
        if weighted:  # raw weights and their sum: each member scales its own periods (see moments())
            context["weight_raw"] = True
        sql = render_moments(model.engine.dialect, keys, variables, context)
        model._record("grid: pass 2 moments of the union, by pattern", sql)
        frame = model.engine.query(sql, {**params, **{f"shift_{i}": float(v.shift) for i, v in enumerate(variables)}})
        self.n, self.sums, self.cross = MomentColumns(len(variables)).arrays(frame)
        self.sum_w = frame["sum_w"].to_numpy().astype(np.float64) if weighted else None
        self.frame = frame.select(keys)
        self.shift = np.array([v.shift for v in variables], dtype=np.float64)
        self.names = [v.name for v in variables]


@dataclass
class GridResults:
    """The runs of a grid, in order; ``summary`` lays them out side by side."""

    runs: list[Any]

    @property
    def summary(self) -> str:
        return side_by_side(self.runs)

    def __str__(self) -> str:
        return self.summary


def fit_grid(model: Any, *, write: bool = True, progress: Any = None) -> GridResults:
    """Fit every member of ``model.spec.grid`` on ``model``'s engine, sharing one pass-2 scan."""
    from fmduck.model import FamaMacBeth

    scan = SharedScan(model.spec)
    runs = []
    for member in member_specs(model.spec):
        m = FamaMacBeth(member, model.engine, results=getattr(model, "results_engine", None))
        m.shared_scan = scan
        runs.append(m.fit(write=write, progress=progress))
        model.statements.extend((f"{member.name}: {label}", sql) for label, sql in m.statements)
    return GridResults(runs)


def side_by_side(runs: list[Any], se_type: str = "nw") -> str:
    """A paper-style table: one column per run, estimate over (t statistic), then N, T, avg R²."""
    terms: list[str] = []
    for r in runs:
        terms += [t for t in r.terms if t not in terms]
    union = [t for t in (["const"] + list(runs[-1].spec.get("factor_cols") or [])) if t in terms]
    terms = union + [t for t in terms if t not in union]
    names = [r.name.split(":", 1)[-1] for r in runs]
    width = max(12, *(len(n) + 2 for n in names))
    lines = [f"{'':<14}" + "".join(f"{n:>{width}}" for n in names)]
    lines.append("-" * (14 + width * len(runs)))
    for term in terms:
        est, tst = [], []
        for r in runs:
            row = r.estimates.filter((pl.col("term") == term) & (pl.col("se_type") == se_type))
            if row.height:
                est.append(f"{row['estimate'][0]:.4f}")
                tst.append(f"({row['t_stat'][0]:.2f})")
            else:
                est.append("")
                tst.append("")
        lines.append(f"{term:<14}" + "".join(f"{e:>{width}}" for e in est))
        lines.append(f"{'':<14}" + "".join(f"{t:>{width}}" for t in tst))
    lines.append("-" * (14 + width * len(runs)))
    for label, key in (("T", "n_periods"), ("avg N", "avg_n"), ("avg R2", "avg_r2")):
        vals = [r.estimates[key][0] for r in runs]
        fmt = "{:.0f}" if key == "n_periods" else "{:.1f}" if key == "avg_n" else "{:.3f}"
        lines.append(f"{label:<14}" + "".join(f"{fmt.format(v):>{width}}" for v in vals))
    for test, se in (("wald_slopes", se_type), ("grs", None)):
        vals = []
        for r in runs:
            t = r.extra.get("tests", pl.DataFrame())
            row = t.filter((pl.col("test") == test) & (pl.col("distribution") == "F")
                           & (pl.col("se_type").is_null() if se is None else pl.col("se_type") == se)) if t.height else t
            vals.append(f"{row['p_value'][0]:.3f}" if row.height and row["p_value"][0] is not None else "")
        if any(vals):
            lines.append(f"{'p ' + test:<14}" + "".join(f"{v:>{width}}" for v in vals))
    lines.append(f"Estimates with t statistics ({se_type}) in parentheses; runs "
                 + ", ".join(r.name for r in runs) + f"; {runs[0].run['conventions'].splitlines()[0]}")
    return "\n".join(lines)
