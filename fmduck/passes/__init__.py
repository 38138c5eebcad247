"""The three passes of a two-pass run, as functions of a plan and of the values they return.

- :mod:`.pass1`: time-series regressions per asset (full sample) or per rolling window, solved in the
  engine into the first-pass scratch table;
- :mod:`.pass2`: cross-sectional regressions per period on the (lagged) betas and characteristics,
  solved in the engine into the λ_t scratch table;
- :mod:`.pricing`: each asset's average pass-2 residual (pricing error α_i);
- :mod:`.pass3`: inference on λ_t with the estimators of :mod:`fmduck.covariance`.
"""
