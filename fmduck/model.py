"""The two-pass Fama-MacBeth estimator: SQL moments per pass, one batched solve per pass, pass-3 inference.

    model = FamaMacBeth(spec, "panel.duckdb")
    results = model.fit()          # runs passes 1-3 and stores the run in the results schema
    print(results.summary)
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
from sqlglot import exp

from fmduck import templates, validate
from fmduck.engine import Engine, Relation, connect
from fmduck.errors import EstimationError, InputError
from fmduck.conventions import conventions_hac, preset_line
from fmduck.modeltests import model_tests
from fmduck import pass2_options, prepare
from fmduck.inference import (
    LAG_RULES,
    NW_DIVISORS,
    Inference,
    automatic_lag,
    fm_covariance,
    inference,
    newey_west_covariance,
    shanken_covariance,
)
from fmduck.results import FamaMacBethResults, FirstPass, assemble, run_record, write_run
from fmduck.moments import Moments, Variable, compute_moments, stream_moments
from fmduck.solve import OLSBatch
from fmduck.spec import Spec

Progress = Callable[[str], None]
PASS1_BATCH = 1 << 17  # windows per Arrow batch of the streamed rolling pass 1 (measured on M: 2^16-2^18 alike)


@dataclass
class _Inputs:
    returns: Relation
    factors: Relation | None
    y: Variable
    factors_vars: list[Variable]
    chars_vars: list[Variable]
    rf_in_factors: bool
    returns_rows: int


class FamaMacBeth:
    """Fama-MacBeth regression of a returns panel on (rolling or full-sample) betas and/or characteristics."""

    shared_scan: Any = None  # a grid member's shared scan (fmduck/grid.py): inputs, pass 1, pass-2 moments once

    def __init__(self, spec: Spec, database: Any = ":memory:", *, results: Any = None) -> None:
        """``database``: where the panel is (and the results go); ``results``: another database or
        engine for the results (e.g. a local DuckDB file when the source is read-only)."""
        spec.validate()
        self.spec = spec
        self.engine: Engine = connect(database)
        self.results_engine: Engine = self.engine if results is None else connect(results)
        self.statements: list[tuple[str, str]] = []

    # ================================================================== public
    def fit(self, *, write: bool = True, progress: Progress | None = None) -> FamaMacBethResults:
        """Run passes 1-3; store the run (unless ``write=False``) and return its results."""
        if self.spec.grid:  # a specification grid: one stored run per member (fmduck/grid.py)
            from fmduck.grid import fit_grid

            return fit_grid(self, write=write, progress=progress)
        say = progress or (lambda _msg: None)
        spec = self.spec
        run_id = self._begin()
        try:
            say("checking inputs")
            inputs = self.shared_scan.inputs(self) if self.shared_scan is not None else self._inputs()
            self._inputs_cache = inputs
            self._prepared_sql, self._prepared_params = None, {}
            notes = [n for n in (prepare.apply(self, inputs),) if n]  # fmduck/prepare.py (issue 9)
            calendar = self._calendar(inputs)
            first_pass = pl.DataFrame()
            betas = None
            skipped: list[pl.DataFrame] = []
            if spec.beta_based:
                say(f"pass 1: {'rolling ' + str(spec.window) + '-period' if spec.rolling else 'full-sample'} "
                    f"time-series regressions on {', '.join(spec.factor_cols)}")
                first_pass, betas, skipped_1 = (self.shared_scan.pass1(self, inputs, calendar)
                                                if self.shared_scan is not None else self._pass1(inputs, calendar))
                skipped.append(skipped_1)
            say("pass 2: cross-sectional regressions per period")
            lambdas, regressors, skipped_2, pass2_rows = self._pass2(inputs, betas, calendar)
            skipped.append(skipped_2)
            say("pass 3: Fama-MacBeth, Newey-West" + (" and Shanken" if spec.beta_based else "") + " inference")
            estimates, conventions = self._pass3(inputs, lambdas)
            conventions = "\n".join([conventions, *notes, *self._pass2_notes])  # set by _pass2
            say("pricing errors per asset")
            pricing = self._pricing_errors(inputs, betas, lambdas, regressors)
            say("tests of the model")
            tests = model_tests(self, inputs, first_pass.long() if isinstance(first_pass, FirstPass)
                                and not spec.rolling else first_pass, betas, lambdas, regressors, pricing)
        finally:
            self._drop_scratch()
        periods = lambdas.select("period").to_series()
        run = run_record(
            spec, run_id=run_id, dialect=self.engine.dialect, conventions=conventions, statements=self.statements,
            fingerprint=_fingerprint(inputs, periods, pass2_rows=pass2_rows, n_assets=int(pricing.height)),
            n_periods=lambdas.select(pl.col("period_index").n_unique()).item(),
            avg_n=estimates["avg_n"][0], avg_r2=estimates["avg_r2"][0], started=self._started,
        )
        skipped_all = [s for s in skipped if s.height]
        results = assemble(
            run, first_pass=first_pass, lambdas=lambdas, estimates=estimates, pricing_errors=pricing,
            skipped=pl.concat(skipped_all, how="vertical") if skipped_all else _empty_skipped(),
            extra={"tests": tests},
        )
        return self._store(results, write=write, say=say)

    def _begin(self, *scratch: str) -> str:
        """A new run id; starts the run's clock, names its scratch uploads (calendar, betas, λ_t,
        ``scratch``) and clears the SQL log."""
        self._started = time.perf_counter()
        run_id = uuid.uuid4().hex
        self._tables = {k: f"fmduck_{k}_{run_id[:8]}" for k in ("calendar", "betas", "lambdas", *scratch)}
        self.statements = []
        return run_id

    def _drop_scratch(self) -> None:
        for name in self._tables.values():
            self.engine.drop_upload(name)

    def _store(self, results: FamaMacBethResults, *, write: bool, say: Progress) -> FamaMacBethResults:
        """Write a finished run to the results engine (unless ``write=False``) and return it."""
        spec = self.spec
        if write:
            say(f"writing run {spec.name!r} to schema {spec.schema!r}")
            write_run(self.results_engine, spec.schema, results, replace=spec.replace)
        return results

    def sql(self) -> list[tuple[str, str]]:
        """The statements a fit runs, as this engine renders them. It performs the fit without writing,
        so what it returns is exactly what ran (on a large panel this takes as long as a fit)."""
        self.fit(write=False)
        return list(self.statements)

    # ================================================================== inputs
    def _inputs(self) -> _Inputs:
        spec, eng = self.spec, self.engine
        returns = eng.relation(spec.returns, "returns")
        factors = eng.relation(spec.factors, "factors") if spec.factors is not None else None
        fperiod = spec.factor_period or spec.period
        rf_in_factors = False
        numeric = [spec.ret, *spec.chars]
        needed = {"--asset": spec.asset, "--period": spec.period, "--ret": spec.ret}
        needed.update({f"--chars {c}": c for c in spec.chars})
        if spec.rf is not None:
            if spec.rf in returns.columns:
                needed["--rf"] = spec.rf
                numeric.append(spec.rf)
            elif factors is not None and spec.rf in factors.columns:
                rf_in_factors = True
            else:
                where = f"{returns.label}" + (f" or {factors.label}" if factors else "")
                raise InputError(f"risk-free column --rf {spec.rf!r} is in neither {where}")
        validate.require_columns(returns, needed, numeric)
        validate.require_unique(self.engine, returns, [spec.asset, spec.period])
        prof = validate.profile(eng, returns, numeric)
        fprof = None
        if factors is not None:
            fneeded = {"--factor-period": fperiod, **{f"--factor-cols {c}": c for c in spec.factor_cols}}
            fnumeric = list(spec.factor_cols) + ([spec.rf] if rf_in_factors else [])
            if rf_in_factors:
                fneeded["--rf"] = spec.rf
            validate.require_columns(factors, fneeded, fnumeric)
            validate.require_same_period_type(returns, spec.period, factors, fperiod)
            validate.require_unique(eng, factors, [fperiod])
            fprof = validate.profile(eng, factors, fnumeric) if fnumeric else None

        y_expr: exp.Expression = templates.column(spec.ret, "p")
        y_shift = prof.shift(spec.ret)
        if spec.rf is not None:
            source, rf_shift = ("f", fprof.shift(spec.rf)) if rf_in_factors else ("p", prof.shift(spec.rf))
            y_expr = exp.Sub(this=y_expr, expression=templates.column(spec.rf, source))
            y_shift -= rf_shift
        factor_vars = [Variable(c, templates.column(c, "f"), fprof.shift(c)) for c in spec.factor_cols]
        char_alias = "lagged" if spec.char_lag else "p"
        char_vars = [Variable(c, templates.column(c, char_alias), prof.shift(c)) for c in spec.chars]
        return _Inputs(returns, factors, Variable("y", y_expr, y_shift), factor_vars, char_vars,
                       rf_in_factors, prof.n_rows)

    def _calendar(self, inputs: _Inputs) -> pl.DataFrame:
        """Distinct periods (of the factors table, else the panel) with their dense index 1..T."""
        spec = self.spec
        relation, column = (
            (inputs.factors, spec.factor_period or spec.period) if inputs.factors else (inputs.returns, spec.period)
        )
        sql = templates.render("calendar", self.engine.dialect, relation=relation.sql, period=templates.ident(column))
        self._record("calendar", sql)
        calendar = self.engine.query(sql).with_row_index("pidx", offset=1).with_columns(pl.col("pidx").cast(pl.Int64))
        if calendar.height == 0:
            raise InputError(f"{relation.label}: no periods (column {column!r} is empty)")
        self.engine.upload(self._tables["calendar"], calendar)
        return calendar

    # ================================================================== passes
    def _moments(self, label: str, keys: list[str], variables: list[Variable], *, rolling: bool = False,
                 **source: Any) -> Moments:
        """The moments of ``variables`` per ``keys`` over the panel rows joined as ``source`` asks."""
        context, params = self._row_source(**source)
        return compute_moments(self.engine, keys, variables, context, params, rolling=rolling,
                               record=lambda sql: self._record(label, sql))

    def _row_source(self, **source: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """Template context and bound parameters of ``sql/rows.sql.j2`` for the row source ``source``."""
        spec = self.spec
        context = {
            "returns": getattr(self, "_prepared_sql", None) or self._inputs_cache.returns.sql,
            "asset": templates.ident(spec.asset),
            "period": templates.ident(spec.period),
            "calendar": templates.ident(self._tables["calendar"]),
            "factors": None,
            "factor_period": templates.ident(spec.factor_period or spec.period),
            "betas": None,
            "betas_table": templates.ident(self._tables["betas"]),
            "char_lag": False,
            "lambdas_table": None,
            **source,
        }
        params = {"beta_lag": spec.beta_lag, "char_lag": spec.char_lag,
                  "window_preceding": (spec.window or 1) - 1, "min_obs": spec.effective_min_obs,
                  **getattr(self, "_prepared_params", {})}
        return context, params

    def _pass1(self, inputs: _Inputs, calendar: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
        spec = self.spec
        variables = [*inputs.factors_vars, inputs.y]
        keys = ["asset", "pidx"] if spec.rolling else ["asset"]
        if spec.rolling:
            frame, fit = self._pass1_streamed(keys, variables, factors=inputs.factors.sql)
        else:
            mom = self._moments("pass 1 moments", keys, variables, rolling=spec.rolling, factors=inputs.factors.sql)
            frame, fit = mom.frame, _ChunkedFit([mom.ols(intercept=True, min_df=1)] if mom.frame.height else [])
        if frame.height == 0:
            raise InputError(
                f"{inputs.returns.label}: no (asset, period) row has a non-NULL return and factors"
                + (f" in a window with at least {spec.effective_min_obs} observations" if spec.rolling else "")
            )
        # per batch of a streamed pass 1: no whole-length copies of the batches' ok/nobs/reason fields
        ok = np.concatenate([f.ok & (f.nobs >= spec.effective_min_obs) for f in fit._fits])
        bad = ~ok
        reason = np.where(fit.column("ok", bad), "too few observations", fit.column("reason", bad))
        terms = ["const", *spec.factor_cols]
        # held wide; the long (asset, period, term) layout is built when read or written (results.FirstPass)
        first_pass = FirstPass(frame.select(keys), terms, fit, ok, calendar if spec.rolling else None)
        skipped = _skipped("first_pass", first_pass._kept_keys(ok=bad), reason, fit.column("nobs", bad))
        if not ok.any():
            raise EstimationError(
                f"pass 1: no asset of {inputs.returns.label} has a usable time-series regression of "
                f"{spec.ret} on {', '.join(spec.factor_cols)} ({_reasons(reason)})"
            )
        betas = frame.select(keys).filter(pl.Series(ok)).with_columns(
            [pl.Series(f"b{j}", fit.column("params", ok, j + 1)) for j in range(len(spec.factor_cols))]
        )
        return first_pass, betas, skipped

    def _pass1_streamed(self, keys: list[str], variables: list[Variable], **source: Any
                        ) -> tuple[pl.DataFrame, _ChunkedFit]:
        """The rolling pass-1 moments read in batches of ``PASS1_BATCH`` windows, each solved as it arrives:
        the whole moments frame and its numpy copy never exist at once (memory; fresh pages cost time).
        Returns the keys of every window and its OLS results (kept per batch), in query order."""
        context, params = self._row_source(**source)
        frames: list[pl.DataFrame] = []
        fits: list[OLSBatch] = []
        for mom in stream_moments(self.engine, keys, variables, context, params, rolling=True, rows=PASS1_BATCH,
                                  record=lambda sql: self._record("pass 1 moments", sql)):
            fits.append(mom.ols(intercept=True, min_df=1))
            frames.append(_owned(mom.frame))
        if not fits:
            return pl.DataFrame(schema={k: pl.Int64 for k in keys}), _ChunkedFit([])
        return pl.concat(frames, how="vertical"), _ChunkedFit(fits)

    def _pass2(self, inputs: _Inputs, betas: pl.DataFrame | None, calendar: pl.DataFrame):
        spec = self.spec
        regressors: list[Variable] = []
        if betas is not None:
            self.engine.upload(self._tables["betas"], betas)
            regressors += [
                Variable(f, exp.column(f"b{j}", table="b"), float(betas[f"b{j}"].mean()))
                for j, f in enumerate(spec.factor_cols)
            ]
        regressors += inputs.chars_vars
        variables = [*regressors, inputs.y]
        source = self._pass2_source(inputs, betas)
        source, variables, extra_skipped, self._pass2_notes = pass2_options.apply(self, inputs, source, variables)
        if self.shared_scan is not None:
            mom = self.shared_scan.moments(self, inputs, regressors, source)
        else:
            mom = self._moments("pass 2 moments", ["pidx"], variables, **source)
        frame = mom.frame
        if frame.height == 0:
            raise InputError(
                f"{inputs.returns.label}: no period has observations with every regressor "
                f"({', '.join(v.name for v in regressors)}) and the return non-NULL"
                + (f" (betas lagged {spec.beta_lag} period(s))" if spec.rolling else "")
            )
        p = len(regressors) + int(spec.intercept)
        min_df = max(1, (spec.min_assets or p + 1) - p)
        fit = mom.ols(intercept=spec.intercept, min_df=min_df)
        keyframe = frame.select("pidx").join(calendar, on="pidx", how="left").with_columns(
            pl.col("period").cast(pl.Utf8)
        ).rename({"pidx": "period_index"})
        skipped = _skipped("cross_section", keyframe.filter(pl.Series(~fit.ok)).with_columns(
            pl.lit(None, pl.Utf8).alias("asset")), fit.reason[~fit.ok], fit.nobs[~fit.ok])
        if extra_skipped.height:  # rows that --weights / --absorb left out, per period
            skipped = pl.concat([skipped, extra_skipped.select(skipped.columns)], how="vertical")
        ok = fit.ok
        if ok.sum() < 2:
            raise EstimationError(
                f"pass 2: fewer than 2 periods have a usable cross-sectional regression of {spec.ret} on "
                f"{', '.join(spec.terms)} ({int(ok.sum())} of {len(ok)}; {_reasons(fit.reason[~ok])})"
            )
        lambdas = keyframe.filter(pl.Series(ok)).with_columns(
            *[pl.Series(t, fit.params[ok, j]) for j, t in enumerate(spec.terms)],
            pl.Series("r2", fit.r2[ok]),
            pl.Series("adj_r2", fit.adj_r2[ok]),
            pl.Series("n", fit.nobs[ok]),
        ).sort("period_index")
        return lambdas, regressors, skipped, int(fit.nobs[ok].sum())

    def _pass2_source(self, inputs: _Inputs, betas: pl.DataFrame | None) -> dict[str, Any]:
        spec = self.spec
        return {
            "factors": inputs.factors.sql if inputs.rf_in_factors else None,
            "betas": None if betas is None else ("rolling" if spec.rolling else "full"),
            "char_lag": bool(spec.chars and spec.char_lag),
        }

    def _pass3(self, inputs: _Inputs, lambdas: pl.DataFrame) -> tuple[pl.DataFrame, str]:
        spec = self.spec
        terms = spec.terms
        lam = lambdas.select(terms).to_numpy().astype(np.float64)
        t = lam.shape[0]
        df = t - 1
        estimate = lam.mean(axis=0)
        v_fm = fm_covariance(lam)
        lags = automatic_lag(t, spec.lag_rule) if spec.nw_lags == "auto" else int(spec.nw_lags)
        if lags >= t:
            raise EstimationError(f"Newey-West lag {lags} is not below the number of periods T = {t}")
        results: list[tuple[Inference, str]] = [
            (inference("fm", estimate, v_fm, df), f"Fama-MacBeth: sd(lambda_t, ddof=1)/sqrt(T); t with T-1 = {df} df"),
            (inference("nw", estimate, newey_west_covariance(lam, lags, spec.nw_divisor), df),
             f"Newey-West: Bartlett, L = {lags}"
             + (f" (automatic, {spec.lag_rule}: {LAG_RULES[spec.lag_rule]})" if spec.nw_lags == "auto" else " (fixed)")
             + f", Var = {NW_DIVISORS[spec.nw_divisor]}; t with T-1 = {df} df"),
        ]
        if spec.conventions != "fmduck":  # another tool's Newey-West (fmduck/conventions.py)
            hac = conventions_hac(lam, lambdas["period_index"].to_numpy(), spec)
            results[1] = (inference("nw", estimate, hac.covariance, df), hac.note)
            lags = hac.lags
        if spec.beta_based:
            series = self._factor_series(inputs)
            aligned = lambdas.select("period_index").join(series, left_on="period_index", right_on="pidx", how="left")
            f = aligned.select([f"f{j}" for j in range(len(spec.factor_cols))]).drop_nulls().to_numpy().astype(np.float64)
            positions = [terms.index(c) for c in spec.factor_cols]
            if f.shape[0] < 2:
                raise EstimationError("Shanken correction: fewer than 2 periods of factor values")
            v_sh, c = shanken_covariance(v_fm, estimate, f, positions, periods=t)
            results.append((inference("shanken", estimate, v_sh, df),
                            f"Shanken (1992): (1+c)(V_FM - Sigma_f/T) + Sigma_f/T, c = {c:.6g}, "
                            f"Sigma_f sample covariance (ddof=1) over the T periods; t with T-1 = {df} df"))
        avg_n = float(lambdas["n"].mean())
        avg_r2 = float(lambdas["r2"].mean())
        rows = []
        for inf, note in results:
            for j, term in enumerate(terms):
                rows.append({
                    "term": term, "se_type": inf.se_type, "estimate": float(inf.estimate[j]),
                    "std_error": float(inf.std_error[j]), "t_stat": float(inf.t_stat[j]),
                    "p_value": float(inf.p_value[j]), "ci_lower": float(inf.ci_lower[j]),
                    "ci_upper": float(inf.ci_upper[j]), "n_periods": t, "df": inf.df, "avg_n": avg_n,
                    "avg_r2": avg_r2, "nw_lags": (lags[j] if isinstance(lags, list) else lags)
                    if inf.se_type == "nw" else None, "convention": f"[{spec.conventions}] {note}",
                })
        estimates = pl.DataFrame(rows, schema_overrides={"nw_lags": pl.Int64})
        conventions = "\n".join([preset_line(spec), *(note for _, note in results)])
        self._covariances = {inf.se_type: inf.covariance for inf, _ in results}
        return estimates, conventions

    def _factor_series(self, inputs: _Inputs) -> pl.DataFrame:
        spec = self.spec
        sql = templates.render(
            "factor_series", self.engine.dialect, relation=inputs.factors.sql,
            calendar=templates.ident(self._tables["calendar"]),
            factor_period=templates.ident(spec.factor_period or spec.period),
            factors=[{"ident": templates.ident(c), "alias": f"f{j}"} for j, c in enumerate(spec.factor_cols)],
        )
        self._record("factor series (Shanken)", sql)
        return self.engine.query(sql)

    def _pricing_errors(self, inputs: _Inputs, betas: pl.DataFrame | None, lambdas: pl.DataFrame,
                        regressors: list[Variable]) -> pl.DataFrame:
        """α_i: each asset's average pass-2 residual r_it − x_it'λ_t, with its standard error s/√n."""
        spec = self.spec
        coef = lambdas.select(
            pl.col("period_index").alias("pidx"),
            *[pl.col(t).alias(f"l{j}") for j, t in enumerate(spec.terms)],
        )
        self.engine.upload(self._tables["lambdas"], coef)
        fitted: exp.Expression | None = None
        offset = int(spec.intercept)
        if spec.intercept:
            fitted = exp.column("l0", table="l")
        for j, reg in enumerate(regressors):
            term = exp.Mul(this=exp.column(f"l{j + offset}", table="l"), expression=exp.Paren(this=reg.expr))
            fitted = term if fitted is None else exp.Add(this=fitted, expression=term)
        resid = Variable("resid", exp.Sub(this=exp.Paren(this=inputs.y.expr), expression=exp.Paren(this=fitted)), 0.0)
        source = self._pass2_source(inputs, betas)
        source["lambdas_table"] = templates.ident(self._tables["lambdas"])
        mom = self._moments("pricing errors", ["asset"], [resid], **source)
        fit = mom.ols(intercept=True, min_df=1)
        return pl.DataFrame({
            "asset": mom.frame["asset"].cast(pl.Utf8),
            "alpha": fit.params[:, 0],
            "std_error": fit.std_errors[:, 0],
            "t_stat": fit.tstats[:, 0],
            "n_periods": fit.nobs,
        }).sort("asset")

    def _record(self, label: str, sql: str) -> None:
        self.statements.append((label, sql))


# ====================================================================== helpers
class _ChunkedFit:
    """``OLSBatch`` results of consecutive batches, read like one ``OLSBatch``: each field is
    concatenated on first use (the SEs and R² columns only when the long first pass is built)."""

    def __init__(self, fits: list[OLSBatch]) -> None:
        self._fits = fits

    def __getattr__(self, name: str) -> np.ndarray:
        if name.startswith("_") or name not in OLSBatch.__dataclass_fields__:
            raise AttributeError(name)
        value = np.concatenate([getattr(f, name) for f in self._fits])
        setattr(self, name, value)
        return value

    def column(self, name: str, rows: np.ndarray, j: int | None = None) -> np.ndarray:
        """``getattr(self, name)[rows]`` (column ``j`` of a 2-D field), batch by batch unless the field is
        concatenated already: the whole field is never copied for a selection."""
        if name in vars(self):
            value = getattr(self, name)
            return (value if j is None else value[:, j])[rows]
        parts, lo = [], 0
        for f in self._fits:
            value = getattr(f, name)
            hi = lo + len(value)
            parts.append((value if j is None else value[:, j])[rows[lo:hi]])
            lo = hi
        return np.concatenate(parts)


def _owned(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with its own copy of every column. A column of a streamed Arrow batch shares the batch's
    memory: keeping the keys alone would keep all of its moment columns alive (~6.8 GB on L)."""
    return pl.DataFrame({name: pa.concat_arrays([frame[name].to_arrow()]) for name in frame.columns})


def _skipped(pass_name: str, keys: pl.DataFrame, reasons: np.ndarray, nobs: np.ndarray) -> pl.DataFrame:
    if keys.height == 0:
        return _empty_skipped()
    return keys.select(
        pl.lit(pass_name).alias("pass"),
        pl.col("asset").cast(pl.Utf8),
        pl.col("period").cast(pl.Utf8),
        pl.Series("reason", [str(r) for r in reasons], dtype=pl.Utf8),
        pl.Series("nobs", nobs.astype(np.int64)),
    )


def _fingerprint(inputs: _Inputs, periods: pl.Series, **counts: Any) -> dict[str, Any]:
    """The input fingerprint stored with a run: sources, row counts, period range."""
    return {
        "returns": inputs.returns.label,
        "returns_rows": inputs.returns_rows,
        "factors": inputs.factors.label if inputs.factors else None,
        **counts,
        "first_period": periods.min(),
        "last_period": periods.max(),
    }


def _empty_skipped() -> pl.DataFrame:
    return pl.DataFrame(schema={"pass": pl.Utf8, "asset": pl.Utf8, "period": pl.Utf8, "reason": pl.Utf8, "nobs": pl.Int64})


def _reasons(reasons: np.ndarray) -> str:
    values, counts = np.unique(np.asarray(reasons, dtype=str), return_counts=True)
    return ", ".join(f"{c} {v}" for v, c in zip(values, counts)) or "none"



def fama_macbeth(database: Any = ":memory:", spec: Spec | None = None, *, write: bool = True,
                 progress: Progress | None = None, **options: Any) -> FamaMacBethResults:
    """Run a Fama-MacBeth regression: ``fama_macbeth(con, name=..., returns=..., factor_cols=[...])``."""
    spec = spec if spec is not None else Spec(**options)
    return FamaMacBeth(spec, database).fit(write=write, progress=progress)
