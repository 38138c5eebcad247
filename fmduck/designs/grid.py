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

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import sqlglot
from sqlglot import exp

from fmduck import prepare, templates
from fmduck.designs import twopass
from fmduck.grid_spec import member_specs
from fmduck.moments import Moments, Variable, moments_source, unpack
from fmduck.passes import pass2
from fmduck.plan import Plan, State


def _union_scan(plan: Plan, spec: Any, setup: Any) -> None:
    """The pass-2 moments of the union of characteristics, by (period, missingness pattern), as one query."""
    n_beta = len(spec.factor_cols)
    variables = setup.variables
    betas = pass2.betas(spec, setup.first_pass) if setup.first_pass else []
    built = prepare.plan(spec)
    scaled = {s["name"] for s in built if s["scale"]}
    alias = "lagged" if spec.char_lag else "p"
    chars = []
    for v in variables.chars:
        raw = templates.column(v.name, alias)
        shift = 0.0 if v.name in scaled else v.shift
        shift_sql = Variable(v.name, raw, shift).shift_sql()
        # a NULL characteristic contributes 0 to every sum (v = shift - shift), its row still counts
        chars.append(Variable(v.name, exp.Coalesce(this=raw, expressions=[sqlglot.parse_one(shift_sql, read="duckdb")]),
                              shift))
    mask: exp.Expression = exp.Literal.number(0)
    for i, c in enumerate(spec.chars):
        bit = exp.Case(ifs=[exp.If(this=exp.Is(this=templates.column(c, alias), expression=exp.Null()),
                                   true=exp.Literal.number(0))], default=exp.Literal.number(1 << i))
        mask = exp.Add(this=mask, expression=bit)
    src = pass2.source(spec, setup.src, setup.catalog, setup.first_pass).with_(
        extra_columns=({"expr": templates.sql(mask), "alias": "fmduck_mask"},))
    if spec.weights:
        src = src.with_(weight=templates.sql(templates.column(spec.weights, "p")), weight_raw=True)
    union = [*betas[:n_beta], *chars, variables.y]
    sql = moments_source(plan.dialect, ["pidx", "fmduck_mask"], union, src, group_shift=False)  # summed across patterns

    def then(state: State, frame: pl.DataFrame) -> None:
        state["union"] = frame
        state["union_names"] = [v.name for v in union]

    plan.add("grid_union", "grid: pass 2 moments of the union, by pattern", sql,
             params=pass2.params(spec), then=then)


def _member_moments(spec: Any, member: Any, state: State) -> Moments:
    frame, names = state["union"], state["union_names"]
    chars = list(member.chars)
    union_chars = list(spec.chars)
    need = sum(1 << union_chars.index(c) for c in chars)
    masks = frame["fmduck_mask"].to_numpy().astype(np.int64)
    rows = (masks & need) == need
    pidx = frame["pidx"].to_numpy()[rows]
    periods, inverse = np.unique(pidx, return_inverse=True)
    m_all = len(names)
    mom = unpack(frame, ["pidx", "fmduck_mask"], m_all)
    shift = np.asarray(mom.shift, dtype=np.float64)
    shift = shift if shift.ndim == 1 else shift[0]
    pick = [names.index(c) for c in [*spec.factor_cols, *chars]] + [m_all - 1]
    g = len(periods)
    n = np.zeros(g)
    np.add.at(n, inverse, mom.n[rows])
    sums = np.zeros((g, len(pick)))
    np.add.at(sums, inverse, mom.sums[rows][:, pick])
    cross = np.zeros((g, len(pick), len(pick)))
    np.add.at(cross, inverse, mom.cross[rows][:, pick][:, :, pick])
    if spec.weights:  # WLS: scale each period's weights to mean 1 (Σw = n), as a separate run does
        sum_w = np.zeros(g)
        np.add.at(sum_w, inverse, frame["sum_w"].to_numpy().astype(np.float64)[rows])
        scale = n / sum_w
        sums *= scale[:, None]
        cross *= scale[:, None, None]
    keys = pl.DataFrame({"pidx": periods}).with_columns(pl.col("pidx").cast(pl.Int64))
    return Moments(keys, n, sums, cross, shift[pick])


def _member_lambdas(member: Any, mom: Moments) -> pl.DataFrame:
    """λ_t of a member solved in Python: the columns of a solved cross-section table (pidx, nobs, ok, e<j>...)."""
    p = len(member.factor_cols) + len(member.chars) + int(member.intercept)
    fit = mom.ols(intercept=member.intercept, min_df=pass2.min_df(member, p - int(member.intercept)))
    return mom.frame.with_columns(
        pl.Series("nobs", fit.nobs), pl.Series("ok", fit.ok),
        pl.Series("reason", [r or None for r in fit.reason], dtype=pl.Utf8),
        *[pl.Series(f"e{j}", fit.params[:, j]) for j in range(p)],
        *[pl.Series(f"s{j}", fit.std_errors[:, j]) for j in range(p)],
        pl.Series("r2", fit.r2), pl.Series("adj_r2", fit.adj_r2), pl.Series("rmse", fit.rmse))


def build(run: Any, cat: Any) -> tuple[Plan, Any]:
    """The shared part of a grid: checks, calendar, pass 1 once, the union pass-2 scan."""
    spec = run.spec
    union = spec.replace_with(grid=None)
    plan, setup = twopass.build_shared(run, cat, union)
    twopass.options_check(plan, union, setup)
    _union_scan(plan, union, setup)
    return plan, setup


def fit(run: Any, cat: Any) -> list:
    """Fit every member of the grid on ``run``, sharing checks, pass 1 and one pass-2 scan."""
    plan, setup = build(run, cat)
    state = plan.execute(run)
    union = run.spec.replace_with(grid=None)
    out = []
    for member in member_specs(run.spec):
        run.say(f"grid member {member.name}")
        table = _member_lambdas(member, _member_moments(union, member, state))
        key = "lambdas_" + member.name.split(":", 1)[1]
        name = run.upload(key, table)
        mplan, msetup = twopass.build_member(run, cat, member, setup, name)
        mstate = mplan.execute(run, State(dict(state.values)))
        result = twopass.finish(run, member, msetup, mstate)
        result.statements, run.statements = list(run.statements), []  # the shared scan: the first member's
        out.append((member, result))
        for step in mplan:  # the next member makes its own
            if step.kind == "create":
                run.drop(step.key)
    return out


@dataclass
class GridResults:
    """The runs of a grid, in order; ``summary`` lays them out side by side."""

    runs: list[Any]

    @property
    def summary(self) -> str:
        return side_by_side(self.runs)

    def __str__(self) -> str:
        return self.summary


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
            same_se = pl.col("se_type").is_null() if se is None else pl.col("se_type") == se
            row = t.filter((pl.col("test") == test) & (pl.col("distribution") == "F") & same_se) if t.height else t
            vals.append(f"{row['p_value'][0]:.3f}" if row.height and row["p_value"][0] is not None else "")
        if any(vals):
            lines.append(f"{'p ' + test:<14}" + "".join(f"{v:>{width}}" for v in vals))
    lines.append(f"Estimates with t statistics ({se_type}) in parentheses; runs "
                 + ", ".join(r.name for r in runs) + f"; {runs[0].run['conventions'].splitlines()[0]}")
    return "\n".join(lines)
