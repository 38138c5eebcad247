-- check: repeated (asset, period) in table panel
SELECT
  COUNT(CASE WHEN fmduck_null THEN 1 END) AS n_null,
  COUNT(CASE WHEN fmduck_prev = fmduck_key THEN 1 END) AS n_rows
FROM (
  SELECT
    r."asset" IS NULL OR r."period" IS NULL AS fmduck_null,
    r."period" AS fmduck_key,
    LAG(r."period") OVER (PARTITION BY r."asset" ORDER BY r."period") AS fmduck_prev
  FROM "panel" AS r
) AS keyed;

-- profile of table panel
CREATE TEMPORARY TABLE "fmduck_profile_returns" AS
SELECT
  COUNT(*) AS n_rows,
  COUNT("ret") AS c0_count,
  SUM(CASE WHEN "ret" * 0 <> 0 THEN 1 ELSE 0 END) AS c0_nonfinite,
  CAST(MAX(CASE WHEN "ret" * 0 = 0 THEN ABS("ret") END) AS DOUBLE) AS c0_max_abs,
  CAST(MEDIAN(ABS("ret")) AS DOUBLE) AS c0_median_abs,
  SUM(CASE WHEN ABS("ret") > 1 THEN 1 ELSE 0 END) AS c0_above_one,
  CAST(AVG(CASE WHEN "ret" * 0 = 0 THEN "ret" END) AS DOUBLE) AS c0_mean
FROM "panel" AS r;

-- check: table panel values
SELECT
  *
FROM "fmduck_profile_returns";

-- check: repeated (period) in table factors
SELECT
  COUNT(CASE WHEN fmduck_null THEN 1 END) AS n_null,
  COUNT(CASE WHEN fmduck_prev = fmduck_key THEN 1 END) AS n_rows
FROM (
  SELECT
    r."period" IS NULL AS fmduck_null,
    r."period" AS fmduck_key,
    LAG(r."period") OVER (ORDER BY r."period") AS fmduck_prev
  FROM "factors" AS r
) AS keyed;

-- profile of table factors
CREATE TEMPORARY TABLE "fmduck_profile_factors" AS
SELECT
  COUNT(*) AS n_rows,
  COUNT("mkt") AS c0_count,
  SUM(CASE WHEN "mkt" * 0 <> 0 THEN 1 ELSE 0 END) AS c0_nonfinite,
  CAST(MAX(CASE WHEN "mkt" * 0 = 0 THEN ABS("mkt") END) AS DOUBLE) AS c0_max_abs,
  CAST(MEDIAN(ABS("mkt")) AS DOUBLE) AS c0_median_abs,
  SUM(CASE WHEN ABS("mkt") > 1 THEN 1 ELSE 0 END) AS c0_above_one,
  CAST(AVG(CASE WHEN "mkt" * 0 = 0 THEN "mkt" END) AS DOUBLE) AS c0_mean,
  COUNT("smb") AS c1_count,
  SUM(CASE WHEN "smb" * 0 <> 0 THEN 1 ELSE 0 END) AS c1_nonfinite,
  CAST(MAX(CASE WHEN "smb" * 0 = 0 THEN ABS("smb") END) AS DOUBLE) AS c1_max_abs,
  CAST(MEDIAN(ABS("smb")) AS DOUBLE) AS c1_median_abs,
  SUM(CASE WHEN ABS("smb") > 1 THEN 1 ELSE 0 END) AS c1_above_one,
  CAST(AVG(CASE WHEN "smb" * 0 = 0 THEN "smb" END) AS DOUBLE) AS c1_mean,
  COUNT("rf") AS c2_count,
  SUM(CASE WHEN "rf" * 0 <> 0 THEN 1 ELSE 0 END) AS c2_nonfinite,
  CAST(MAX(CASE WHEN "rf" * 0 = 0 THEN ABS("rf") END) AS DOUBLE) AS c2_max_abs,
  CAST(MEDIAN(ABS("rf")) AS DOUBLE) AS c2_median_abs,
  SUM(CASE WHEN ABS("rf") > 1 THEN 1 ELSE 0 END) AS c2_above_one,
  CAST(AVG(CASE WHEN "rf" * 0 = 0 THEN "rf" END) AS DOUBLE) AS c2_mean
FROM "factors" AS r;

-- check: table factors values
SELECT
  *
FROM "fmduck_profile_factors";

-- calendar
CREATE TEMPORARY TABLE "fmduck_calendar" AS
SELECT
  period,
  ROW_NUMBER() OVER (ORDER BY period) AS pidx
FROM (
  SELECT DISTINCT
    r."period" AS period
  FROM "factors" AS r
  WHERE
    NOT r."period" IS NULL
) AS keys;

-- check: panel periods that meet a factor period
SELECT
  COUNT(*) AS n_rows,
  COUNT(c.pidx) AS matched
FROM "panel" AS r
LEFT JOIN "fmduck_calendar" AS c
  ON r."period" = c.period;

-- fingerprints of table panel per period
SELECT
  CAST(r."period" AS TEXT) AS period,
  MIN(c.pidx) AS period_index,
  COUNT(*) AS n,
  CAST(BIT_XOR(HASH(r."asset", r."period", r."ret", r."size", r."bm")) AS TEXT) AS fingerprint
FROM "panel" AS r
LEFT JOIN "fmduck_calendar" AS c
  ON r."period" = c.period
GROUP BY
  1;

-- fingerprints of table factors per period
SELECT
  CAST(r."period" AS TEXT) AS period,
  MIN(c.pidx) AS period_index,
  COUNT(*) AS n,
  CAST(BIT_XOR(HASH(r."period", r."mkt", r."smb", r."rf")) AS TEXT) AS fingerprint
FROM "factors" AS r
LEFT JOIN "fmduck_calendar" AS c
  ON r."period" = c.period
GROUP BY
  1;

-- pass 1: full-sample time-series regressions on mkt, smb
CREATE TEMPORARY TABLE "fmduck_first_pass" AS
WITH fmduck_shift AS (
  SELECT
    COALESCE((
      SELECT
        c0_mean
      FROM "fmduck_profile_factors"
    ), 0) AS shift_0,
    COALESCE((
      SELECT
        c1_mean
      FROM "fmduck_profile_factors"
    ), 0) AS shift_1,
    COALESCE((
      SELECT
        c0_mean
      FROM "fmduck_profile_returns"
    ), 0) - COALESCE((
      SELECT
        c2_mean
      FROM "fmduck_profile_factors"
    ), 0) AS shift_2
), panel AS (
  SELECT
    r.*,
    c.pidx AS fmduck_pidx
  FROM "panel" AS r
  JOIN "fmduck_calendar" AS c
    ON r."period" = c.period
), fac AS (
  SELECT
    f.*,
    c.pidx AS fmduck_pidx
  FROM "factors" AS f
  JOIN "fmduck_calendar" AS c
    ON f."period" = c.period
), obs AS (
  SELECT
    p."asset" AS asset,
    p.fmduck_pidx AS pidx,
    (
      f."mkt"
    ) - sh.shift_0 AS v0,
    (
      f."smb"
    ) - sh.shift_1 AS v1,
    (
      p."ret" - f."rf"
    ) - sh.shift_2 AS v2
  FROM panel AS p
  CROSS JOIN fmduck_shift AS sh
  JOIN fac AS f
    ON f.fmduck_pidx = p.fmduck_pidx
  WHERE
    NOT (
      f."mkt"
    ) IS NULL
    AND NOT (
      f."smb"
    ) IS NULL
    AND NOT (
      p."ret" - f."rf"
    ) IS NULL
), fmduck_ref AS (
  SELECT
    asset,
    AVG(v0) AS ref_v0,
    AVG(v1) AS ref_v1,
    AVG(v2) AS ref_v2
  FROM obs
  GROUP BY
    asset
), fmduck_centred AS (
  SELECT
    o.asset,
    r.ref_v0,
    o.v0 - r.ref_v0 AS v0,
    r.ref_v1,
    o.v1 - r.ref_v1 AS v1,
    r.ref_v2,
    o.v2 - r.ref_v2 AS v2
  FROM obs AS o
  JOIN fmduck_ref AS r
    ON o.asset = r.asset
), fmduck_moments AS (
  SELECT
    asset,
    COUNT(*) AS n,
    MIN(ref_v0) AS ref_v0,
    MIN(ref_v1) AS ref_v1,
    MIN(ref_v2) AS ref_v2,
    SUM(v0) AS s_v0,
    SUM(v1) AS s_v1,
    SUM(v2) AS s_v2,
    SUM(v0 * v0) AS p_v0_v0,
    SUM(v0 * v1) AS p_v0_v1,
    SUM(v0 * v2) AS p_v0_v2,
    SUM(v1 * v1) AS p_v1_v1,
    SUM(v1 * v2) AS p_v1_v2,
    SUM(v2 * v2) AS p_v2_v2
  FROM fmduck_centred
  GROUP BY
    asset
), fmduck_l0 AS (
  SELECT
    m.*,
    sh.*
  FROM fmduck_moments AS m
  CROSS JOIN fmduck_shift AS sh
), fmduck_l1 AS (
  SELECT
    asset,
    n,
    s_v0,
    s_v1,
    s_v2,
    p_v0_v0,
    p_v0_v1,
    p_v0_v2,
    p_v1_v1,
    p_v1_v2,
    p_v2_v2,
    shift_0,
    ref_v0,
    shift_1,
    ref_v1,
    shift_2,
    ref_v2,
    (
      CAST(1 AS DOUBLE) / NULLIF(
        CASE
          WHEN COALESCE(CAST(n AS DOUBLE) > CAST(0 AS DOUBLE), FALSE)
          THEN CAST(n AS DOUBLE)
          ELSE CAST(1 AS DOUBLE)
        END,
        0
      )
    ) AS fmduck_x18,
    (
      CAST(n AS DOUBLE) - CAST(3 AS DOUBLE)
    ) AS fmduck_x82
  FROM fmduck_l0
), fmduck_l2 AS (
  SELECT
    asset,
    n,
    s_v0,
    s_v1,
    s_v2,
    p_v0_v0,
    p_v0_v1,
    p_v0_v2,
    p_v1_v1,
    p_v1_v2,
    p_v2_v2,
    shift_0,
    ref_v0,
    shift_1,
    ref_v1,
    shift_2,
    ref_v2,
    fmduck_x18,
    fmduck_x82,
    (
      s_v0 * fmduck_x18
    ) AS fmduck_x19,
    (
      s_v1 * fmduck_x18
    ) AS fmduck_x20,
    (
      s_v2 * fmduck_x18
    ) AS fmduck_x21,
    COALESCE(fmduck_x82 < CAST(1 AS DOUBLE), FALSE) AS fmduck_x84
  FROM fmduck_l1
), fmduck_l3 AS (
  SELECT
    asset,
    n,
    s_v0,
    s_v1,
    s_v2,
    p_v0_v0,
    p_v0_v1,
    p_v0_v2,
    p_v1_v1,
    p_v1_v2,
    p_v2_v2,
    shift_0,
    ref_v0,
    shift_1,
    ref_v1,
    shift_2,
    ref_v2,
    fmduck_x18,
    fmduck_x19,
    fmduck_x20,
    fmduck_x21,
    fmduck_x82,
    fmduck_x84,
    (
      p_v0_v0 - (
        s_v0 * fmduck_x19
      )
    ) AS fmduck_x23,
    (
      p_v1_v1 - (
        s_v1 * fmduck_x20
      )
    ) AS fmduck_x27,
    (
      p_v2_v2 - (
        s_v2 * fmduck_x21
      )
    ) AS fmduck_x33,
    (
      fmduck_x19 + (
        shift_0 + ref_v0
      )
    ) AS fmduck_x94,
    (
      fmduck_x20 + (
        shift_1 + ref_v1
      )
    ) AS fmduck_x95
  FROM fmduck_l2
), fmduck_l4 AS (
  SELECT
    asset,
    n,
    s_v0,
    s_v1,
    s_v2,
    p_v0_v0,
    p_v0_v1,
    p_v0_v2,
    p_v1_v1,
    p_v1_v2,
    p_v2_v2,
    shift_0,
    ref_v0,
    shift_1,
    ref_v1,
    shift_2,
    ref_v2,
    fmduck_x18,
    fmduck_x19,
    fmduck_x20,
    fmduck_x21,
    fmduck_x23,
    fmduck_x27,
    fmduck_x33,
    fmduck_x82,
    fmduck_x84,
    fmduck_x94,
    fmduck_x95,
    (
      CAST(1 AS DOUBLE) / NULLIF(CASE WHEN fmduck_x23 >= 0 THEN SQRT(fmduck_x23) END, 0)
    ) AS fmduck_x38,
    (
      CAST(1 AS DOUBLE) / NULLIF(CASE WHEN fmduck_x27 >= 0 THEN SQRT(fmduck_x27) END, 0)
    ) AS fmduck_x44,
    COALESCE(fmduck_x33 > CAST(0 AS DOUBLE), FALSE) AS fmduck_x112
  FROM fmduck_l3
), fmduck_l5 AS (
  SELECT
    asset,
    n,
    s_v0,
    s_v1,
    s_v2,
    p_v0_v0,
    p_v0_v1,
    p_v0_v2,
    p_v1_v1,
    p_v1_v2,
    p_v2_v2,
    shift_0,
    ref_v0,
    shift_1,
    ref_v1,
    shift_2,
    ref_v2,
    fmduck_x18,
    fmduck_x19,
    fmduck_x20,
    fmduck_x21,
    fmduck_x23,
    fmduck_x27,
    fmduck_x33,
    fmduck_x38,
    fmduck_x44,
    fmduck_x82,
    fmduck_x84,
    fmduck_x94,
    fmduck_x95,
    fmduck_x112,
    (
      (
        (
          p_v0_v1 - (
            s_v1 * fmduck_x19
          )
        ) * fmduck_x38
      ) * fmduck_x44
    ) AS fmduck_x46,
    (
      (
        p_v0_v2 - (
          s_v2 * fmduck_x19
        )
      ) * fmduck_x38
    ) AS fmduck_x47,
    (
      fmduck_x94 * fmduck_x38
    ) AS fmduck_x101
  FROM fmduck_l4
), fmduck_l6 AS (
  SELECT
    asset,
    n,
    s_v0,
    s_v1,
    s_v2,
    p_v0_v0,
    p_v0_v1,
    p_v0_v2,
    p_v1_v1,
    p_v1_v2,
    p_v2_v2,
    shift_0,
    ref_v0,
    shift_1,
    ref_v1,
    shift_2,
    ref_v2,
    fmduck_x18,
    fmduck_x19,
    fmduck_x20,
    fmduck_x21,
    fmduck_x23,
    fmduck_x27,
    fmduck_x33,
    fmduck_x38,
    fmduck_x44,
    fmduck_x46,
    fmduck_x47,
    fmduck_x82,
    fmduck_x84,
    fmduck_x94,
    fmduck_x95,
    fmduck_x101,
    fmduck_x112,
    (
      CAST(1 AS DOUBLE) - (
        fmduck_x46 * fmduck_x46
      )
    ) AS fmduck_x50
  FROM fmduck_l5
), fmduck_l7 AS (
  SELECT
    asset,
    n,
    s_v0,
    s_v1,
    s_v2,
    p_v0_v0,
    p_v0_v1,
    p_v0_v2,
    p_v1_v1,
    p_v1_v2,
    p_v2_v2,
    shift_0,
    ref_v0,
    shift_1,
    ref_v1,
    shift_2,
    ref_v2,
    fmduck_x18,
    fmduck_x19,
    fmduck_x20,
    fmduck_x21,
    fmduck_x23,
    fmduck_x27,
    fmduck_x33,
    fmduck_x38,
    fmduck_x44,
    fmduck_x46,
    fmduck_x47,
    fmduck_x50,
    fmduck_x82,
    fmduck_x84,
    fmduck_x94,
    fmduck_x95,
    fmduck_x101,
    fmduck_x112,
    (
      (
        COALESCE(fmduck_x23 > CAST(0 AS DOUBLE), FALSE)
        AND COALESCE(fmduck_x27 > CAST(0 AS DOUBLE), FALSE)
      )
      AND COALESCE(fmduck_x50 > CAST('1e-10' AS DOUBLE), FALSE)
    ) AS fmduck_x53,
    (
      CAST(1 AS DOUBLE) / NULLIF(CASE WHEN fmduck_x50 >= 0 THEN SQRT(fmduck_x50) END, 0)
    ) AS fmduck_x56
  FROM fmduck_l6
), fmduck_l8 AS (
  SELECT
    asset,
    n,
    s_v0,
    s_v1,
    s_v2,
    p_v0_v0,
    p_v0_v1,
    p_v0_v2,
    p_v1_v1,
    p_v1_v2,
    p_v2_v2,
    shift_0,
    ref_v0,
    shift_1,
    ref_v1,
    shift_2,
    ref_v2,
    fmduck_x18,
    fmduck_x19,
    fmduck_x20,
    fmduck_x21,
    fmduck_x23,
    fmduck_x27,
    fmduck_x33,
    fmduck_x38,
    fmduck_x44,
    fmduck_x46,
    fmduck_x47,
    fmduck_x50,
    fmduck_x53,
    fmduck_x56,
    fmduck_x82,
    fmduck_x84,
    fmduck_x94,
    fmduck_x95,
    fmduck_x101,
    fmduck_x112,
    (
      (
        (
          (
            p_v1_v2 - (
              s_v2 * fmduck_x20
            )
          ) * fmduck_x44
        ) - (
          fmduck_x47 * fmduck_x46
        )
      ) * fmduck_x56
    ) AS fmduck_x60,
    (
      fmduck_x46 * (
        -fmduck_x56
      )
    ) AS fmduck_x62,
    (
      fmduck_x53 AND (
        NOT fmduck_x84
      )
    ) AS fmduck_x86
  FROM fmduck_l7
), fmduck_l9 AS (
  SELECT
    asset,
    n,
    s_v0,
    s_v1,
    s_v2,
    p_v0_v0,
    p_v0_v1,
    p_v0_v2,
    p_v1_v1,
    p_v1_v2,
    p_v2_v2,
    shift_0,
    ref_v0,
    shift_1,
    ref_v1,
    shift_2,
    ref_v2,
    fmduck_x18,
    fmduck_x19,
    fmduck_x20,
    fmduck_x21,
    fmduck_x23,
    fmduck_x27,
    fmduck_x33,
    fmduck_x38,
    fmduck_x44,
    fmduck_x46,
    fmduck_x47,
    fmduck_x50,
    fmduck_x53,
    fmduck_x56,
    fmduck_x60,
    fmduck_x62,
    fmduck_x82,
    fmduck_x84,
    fmduck_x86,
    fmduck_x94,
    fmduck_x95,
    fmduck_x101,
    fmduck_x112,
    CASE
      WHEN (
        fmduck_x33 - (
          (
            fmduck_x47 * fmduck_x47
          ) + (
            fmduck_x60 * fmduck_x60
          )
        )
      ) < 0
      THEN CAST(0 AS DOUBLE)
      ELSE (
        fmduck_x33 - (
          (
            fmduck_x47 * fmduck_x47
          ) + (
            fmduck_x60 * fmduck_x60
          )
        )
      )
    END AS fmduck_x67,
    (
      (
        fmduck_x47 + (
          fmduck_x62 * fmduck_x60
        )
      ) * fmduck_x38
    ) AS fmduck_x70,
    (
      (
        fmduck_x56 * fmduck_x60
      ) * fmduck_x44
    ) AS fmduck_x72,
    (
      (
        fmduck_x62 * fmduck_x101
      ) + (
        fmduck_x56 * (
          fmduck_x95 * fmduck_x44
        )
      )
    ) AS fmduck_x105
  FROM fmduck_l8
), fmduck_l10 AS (
  SELECT
    asset,
    n,
    s_v0,
    s_v1,
    s_v2,
    p_v0_v0,
    p_v0_v1,
    p_v0_v2,
    p_v1_v1,
    p_v1_v2,
    p_v2_v2,
    shift_0,
    ref_v0,
    shift_1,
    ref_v1,
    shift_2,
    ref_v2,
    fmduck_x18,
    fmduck_x19,
    fmduck_x20,
    fmduck_x21,
    fmduck_x23,
    fmduck_x27,
    fmduck_x33,
    fmduck_x38,
    fmduck_x44,
    fmduck_x46,
    fmduck_x47,
    fmduck_x50,
    fmduck_x53,
    fmduck_x56,
    fmduck_x60,
    fmduck_x62,
    fmduck_x67,
    fmduck_x70,
    fmduck_x72,
    fmduck_x82,
    fmduck_x84,
    fmduck_x86,
    fmduck_x94,
    fmduck_x95,
    fmduck_x101,
    fmduck_x105,
    fmduck_x112,
    CASE
      WHEN (
        fmduck_x67 / NULLIF(
          CASE
            WHEN COALESCE(fmduck_x82 > CAST(0 AS DOUBLE), FALSE)
            THEN fmduck_x82
            ELSE CAST(NULL AS DOUBLE)
          END,
          0
        )
      ) >= 0
      THEN SQRT(
        (
          fmduck_x67 / NULLIF(
            CASE
              WHEN COALESCE(fmduck_x82 > CAST(0 AS DOUBLE), FALSE)
              THEN fmduck_x82
              ELSE CAST(NULL AS DOUBLE)
            END,
            0
          )
        )
      )
    END AS fmduck_x93,
    (
      fmduck_x67 / NULLIF(CASE WHEN fmduck_x112 THEN fmduck_x33 ELSE CAST(NULL AS DOUBLE) END, 0)
    ) AS fmduck_x115
  FROM fmduck_l9
)
SELECT
  asset,
  n AS nobs,
  fmduck_x86 AS ok,
  CASE
    WHEN fmduck_x84
    THEN 'too few observations'
    WHEN (
      NOT fmduck_x53
    )
    THEN 'singular or collinear regressors'
    WHEN (
      NOT fmduck_x112
    )
    THEN 'dependent variable has no variation'
  END AS reason,
  CASE
    WHEN fmduck_x86
    THEN (
      (
        fmduck_x21 + (
          shift_2 + ref_v2
        )
      ) - (
        (
          fmduck_x94 * fmduck_x70
        ) + (
          fmduck_x95 * fmduck_x72
        )
      )
    )
    ELSE CAST(NULL AS DOUBLE)
  END AS e0,
  CASE WHEN fmduck_x86 THEN fmduck_x70 ELSE CAST(NULL AS DOUBLE) END AS e1,
  CASE WHEN fmduck_x86 THEN fmduck_x72 ELSE CAST(NULL AS DOUBLE) END AS e2,
  CASE
    WHEN fmduck_x86
    THEN (
      CASE
        WHEN (
          fmduck_x18 + (
            (
              fmduck_x101 * fmduck_x101
            ) + (
              fmduck_x105 * fmduck_x105
            )
          )
        ) >= 0
        THEN SQRT(
          (
            fmduck_x18 + (
              (
                fmduck_x101 * fmduck_x101
              ) + (
                fmduck_x105 * fmduck_x105
              )
            )
          )
        )
      END * fmduck_x93
    )
    ELSE CAST(NULL AS DOUBLE)
  END AS s0,
  CASE
    WHEN fmduck_x86
    THEN (
      (
        CASE
          WHEN (
            CAST(1 AS DOUBLE) + (
              fmduck_x62 * fmduck_x62
            )
          ) >= 0
          THEN SQRT((
            CAST(1 AS DOUBLE) + (
              fmduck_x62 * fmduck_x62
            )
          ))
        END * fmduck_x38
      ) * fmduck_x93
    )
    ELSE CAST(NULL AS DOUBLE)
  END AS s1,
  CASE
    WHEN fmduck_x86
    THEN (
      (
        CASE
          WHEN (
            fmduck_x56 * fmduck_x56
          ) >= 0
          THEN SQRT((
            fmduck_x56 * fmduck_x56
          ))
        END * fmduck_x44
      ) * fmduck_x93
    )
    ELSE CAST(NULL AS DOUBLE)
  END AS s2,
  CASE
    WHEN fmduck_x86
    THEN (
      CAST(1 AS DOUBLE) - fmduck_x115
    )
    ELSE CAST(NULL AS DOUBLE)
  END AS r2,
  CASE
    WHEN fmduck_x86
    THEN (
      CAST(1 AS DOUBLE) - (
        (
          fmduck_x115 * (
            CAST(n AS DOUBLE) - CAST(1 AS DOUBLE)
          )
        ) / NULLIF(fmduck_x82, 0)
      )
    )
    ELSE CAST(NULL AS DOUBLE)
  END AS adj_r2,
  CASE WHEN fmduck_x86 THEN fmduck_x93 ELSE CAST(NULL AS DOUBLE) END AS rmse
FROM fmduck_l10;

-- pass 1: outcomes
SELECT
  ok,
  COALESCE(reason, '') AS reason,
  COUNT(*) AS n,
  SUM(nobs) AS nobs
FROM "fmduck_first_pass"
GROUP BY
  ok,
  COALESCE(reason, '')
ORDER BY
  ok,
  2;

-- pass 2: cross-sectional regressions per period
CREATE TEMPORARY TABLE "fmduck_lambdas" AS
WITH fmduck_shift AS (
  SELECT
    COALESCE((
      SELECT
        AVG(e1)
      FROM "fmduck_first_pass"
      WHERE
        ok
    ), 0) AS shift_0,
    COALESCE((
      SELECT
        AVG(e2)
      FROM "fmduck_first_pass"
      WHERE
        ok
    ), 0) AS shift_1,
    COALESCE((
      SELECT
        c0_mean
      FROM "fmduck_profile_returns"
    ), 0) - COALESCE((
      SELECT
        c2_mean
      FROM "fmduck_profile_factors"
    ), 0) AS shift_2
), panel AS (
  SELECT
    r.*,
    c.pidx AS fmduck_pidx
  FROM "panel" AS r
  JOIN "fmduck_calendar" AS c
    ON r."period" = c.period
), fac AS (
  SELECT
    f.*,
    c.pidx AS fmduck_pidx
  FROM "factors" AS f
  JOIN "fmduck_calendar" AS c
    ON f."period" = c.period
), obs AS (
  SELECT
    p."asset" AS asset,
    p.fmduck_pidx AS pidx,
    (
      b.e1
    ) - sh.shift_0 AS v0,
    (
      b.e2
    ) - sh.shift_1 AS v1,
    (
      p."ret" - f."rf"
    ) - sh.shift_2 AS v2
  FROM panel AS p
  CROSS JOIN fmduck_shift AS sh
  JOIN fac AS f
    ON f.fmduck_pidx = p.fmduck_pidx
  JOIN "fmduck_first_pass" AS b
    ON b.asset = p."asset" AND b.ok
  WHERE
    NOT (
      b.e1
    ) IS NULL
    AND NOT (
      b.e2
    ) IS NULL
    AND NOT (
      p."ret" - f."rf"
    ) IS NULL
), fmduck_ref AS (
  SELECT
    pidx,
    AVG(v0) AS ref_v0,
    AVG(v1) AS ref_v1,
    AVG(v2) AS ref_v2
  FROM obs
  GROUP BY
    pidx
), fmduck_centred AS (
  SELECT
    o.pidx,
    r.ref_v0,
    o.v0 - r.ref_v0 AS v0,
    r.ref_v1,
    o.v1 - r.ref_v1 AS v1,
    r.ref_v2,
    o.v2 - r.ref_v2 AS v2
  FROM obs AS o
  JOIN fmduck_ref AS r
    ON o.pidx = r.pidx
), fmduck_moments AS (
  SELECT
    pidx,
    COUNT(*) AS n,
    MIN(ref_v0) AS ref_v0,
    MIN(ref_v1) AS ref_v1,
    MIN(ref_v2) AS ref_v2,
    SUM(v0) AS s_v0,
    SUM(v1) AS s_v1,
    SUM(v2) AS s_v2,
    SUM(v0 * v0) AS p_v0_v0,
    SUM(v0 * v1) AS p_v0_v1,
    SUM(v0 * v2) AS p_v0_v2,
    SUM(v1 * v1) AS p_v1_v1,
    SUM(v1 * v2) AS p_v1_v2,
    SUM(v2 * v2) AS p_v2_v2
  FROM fmduck_centred
  GROUP BY
    pidx
), fmduck_l0 AS (
  SELECT
    m.*,
    sh.*
  FROM fmduck_moments AS m
  CROSS JOIN fmduck_shift AS sh
), fmduck_l1 AS (
  SELECT
    pidx,
    n,
    s_v0,
    s_v1,
    s_v2,
    p_v0_v0,
    p_v0_v1,
    p_v0_v2,
    p_v1_v1,
    p_v1_v2,
    p_v2_v2,
    shift_0,
    ref_v0,
    shift_1,
    ref_v1,
    shift_2,
    ref_v2,
    (
      CAST(1 AS DOUBLE) / NULLIF(
        CASE
          WHEN COALESCE(CAST(n AS DOUBLE) > CAST(0 AS DOUBLE), FALSE)
          THEN CAST(n AS DOUBLE)
          ELSE CAST(1 AS DOUBLE)
        END,
        0
      )
    ) AS fmduck_x18,
    (
      CAST(n AS DOUBLE) - CAST(3 AS DOUBLE)
    ) AS fmduck_x82
  FROM fmduck_l0
), fmduck_l2 AS (
  SELECT
    pidx,
    n,
    s_v0,
    s_v1,
    s_v2,
    p_v0_v0,
    p_v0_v1,
    p_v0_v2,
    p_v1_v1,
    p_v1_v2,
    p_v2_v2,
    shift_0,
    ref_v0,
    shift_1,
    ref_v1,
    shift_2,
    ref_v2,
    fmduck_x18,
    fmduck_x82,
    (
      s_v0 * fmduck_x18
    ) AS fmduck_x19,
    (
      s_v1 * fmduck_x18
    ) AS fmduck_x20,
    (
      s_v2 * fmduck_x18
    ) AS fmduck_x21,
    COALESCE(fmduck_x82 < CAST(1 AS DOUBLE), FALSE) AS fmduck_x84
  FROM fmduck_l1
), fmduck_l3 AS (
  SELECT
    pidx,
    n,
    s_v0,
    s_v1,
    s_v2,
    p_v0_v0,
    p_v0_v1,
    p_v0_v2,
    p_v1_v1,
    p_v1_v2,
    p_v2_v2,
    shift_0,
    ref_v0,
    shift_1,
    ref_v1,
    shift_2,
    ref_v2,
    fmduck_x18,
    fmduck_x19,
    fmduck_x20,
    fmduck_x21,
    fmduck_x82,
    fmduck_x84,
    (
      p_v0_v0 - (
        s_v0 * fmduck_x19
      )
    ) AS fmduck_x23,
    (
      p_v1_v1 - (
        s_v1 * fmduck_x20
      )
    ) AS fmduck_x27,
    (
      p_v2_v2 - (
        s_v2 * fmduck_x21
      )
    ) AS fmduck_x33,
    (
      fmduck_x19 + (
        shift_0 + ref_v0
      )
    ) AS fmduck_x94,
    (
      fmduck_x20 + (
        shift_1 + ref_v1
      )
    ) AS fmduck_x95
  FROM fmduck_l2
), fmduck_l4 AS (
  SELECT
    pidx,
    n,
    s_v0,
    s_v1,
    s_v2,
    p_v0_v0,
    p_v0_v1,
    p_v0_v2,
    p_v1_v1,
    p_v1_v2,
    p_v2_v2,
    shift_0,
    ref_v0,
    shift_1,
    ref_v1,
    shift_2,
    ref_v2,
    fmduck_x18,
    fmduck_x19,
    fmduck_x20,
    fmduck_x21,
    fmduck_x23,
    fmduck_x27,
    fmduck_x33,
    fmduck_x82,
    fmduck_x84,
    fmduck_x94,
    fmduck_x95,
    (
      CAST(1 AS DOUBLE) / NULLIF(CASE WHEN fmduck_x23 >= 0 THEN SQRT(fmduck_x23) END, 0)
    ) AS fmduck_x38,
    (
      CAST(1 AS DOUBLE) / NULLIF(CASE WHEN fmduck_x27 >= 0 THEN SQRT(fmduck_x27) END, 0)
    ) AS fmduck_x44,
    COALESCE(fmduck_x33 > CAST(0 AS DOUBLE), FALSE) AS fmduck_x112
  FROM fmduck_l3
), fmduck_l5 AS (
  SELECT
    pidx,
    n,
    s_v0,
    s_v1,
    s_v2,
    p_v0_v0,
    p_v0_v1,
    p_v0_v2,
    p_v1_v1,
    p_v1_v2,
    p_v2_v2,
    shift_0,
    ref_v0,
    shift_1,
    ref_v1,
    shift_2,
    ref_v2,
    fmduck_x18,
    fmduck_x19,
    fmduck_x20,
    fmduck_x21,
    fmduck_x23,
    fmduck_x27,
    fmduck_x33,
    fmduck_x38,
    fmduck_x44,
    fmduck_x82,
    fmduck_x84,
    fmduck_x94,
    fmduck_x95,
    fmduck_x112,
    (
      (
        (
          p_v0_v1 - (
            s_v1 * fmduck_x19
          )
        ) * fmduck_x38
      ) * fmduck_x44
    ) AS fmduck_x46,
    (
      (
        p_v0_v2 - (
          s_v2 * fmduck_x19
        )
      ) * fmduck_x38
    ) AS fmduck_x47,
    (
      fmduck_x94 * fmduck_x38
    ) AS fmduck_x101
  FROM fmduck_l4
), fmduck_l6 AS (
  SELECT
    pidx,
    n,
    s_v0,
    s_v1,
    s_v2,
    p_v0_v0,
    p_v0_v1,
    p_v0_v2,
    p_v1_v1,
    p_v1_v2,
    p_v2_v2,
    shift_0,
    ref_v0,
    shift_1,
    ref_v1,
    shift_2,
    ref_v2,
    fmduck_x18,
    fmduck_x19,
    fmduck_x20,
    fmduck_x21,
    fmduck_x23,
    fmduck_x27,
    fmduck_x33,
    fmduck_x38,
    fmduck_x44,
    fmduck_x46,
    fmduck_x47,
    fmduck_x82,
    fmduck_x84,
    fmduck_x94,
    fmduck_x95,
    fmduck_x101,
    fmduck_x112,
    (
      CAST(1 AS DOUBLE) - (
        fmduck_x46 * fmduck_x46
      )
    ) AS fmduck_x50
  FROM fmduck_l5
), fmduck_l7 AS (
  SELECT
    pidx,
    n,
    s_v0,
    s_v1,
    s_v2,
    p_v0_v0,
    p_v0_v1,
    p_v0_v2,
    p_v1_v1,
    p_v1_v2,
    p_v2_v2,
    shift_0,
    ref_v0,
    shift_1,
    ref_v1,
    shift_2,
    ref_v2,
    fmduck_x18,
    fmduck_x19,
    fmduck_x20,
    fmduck_x21,
    fmduck_x23,
    fmduck_x27,
    fmduck_x33,
    fmduck_x38,
    fmduck_x44,
    fmduck_x46,
    fmduck_x47,
    fmduck_x50,
    fmduck_x82,
    fmduck_x84,
    fmduck_x94,
    fmduck_x95,
    fmduck_x101,
    fmduck_x112,
    (
      (
        COALESCE(fmduck_x23 > CAST(0 AS DOUBLE), FALSE)
        AND COALESCE(fmduck_x27 > CAST(0 AS DOUBLE), FALSE)
      )
      AND COALESCE(fmduck_x50 > CAST('1e-10' AS DOUBLE), FALSE)
    ) AS fmduck_x53,
    (
      CAST(1 AS DOUBLE) / NULLIF(CASE WHEN fmduck_x50 >= 0 THEN SQRT(fmduck_x50) END, 0)
    ) AS fmduck_x56
  FROM fmduck_l6
), fmduck_l8 AS (
  SELECT
    pidx,
    n,
    s_v0,
    s_v1,
    s_v2,
    p_v0_v0,
    p_v0_v1,
    p_v0_v2,
    p_v1_v1,
    p_v1_v2,
    p_v2_v2,
    shift_0,
    ref_v0,
    shift_1,
    ref_v1,
    shift_2,
    ref_v2,
    fmduck_x18,
    fmduck_x19,
    fmduck_x20,
    fmduck_x21,
    fmduck_x23,
    fmduck_x27,
    fmduck_x33,
    fmduck_x38,
    fmduck_x44,
    fmduck_x46,
    fmduck_x47,
    fmduck_x50,
    fmduck_x53,
    fmduck_x56,
    fmduck_x82,
    fmduck_x84,
    fmduck_x94,
    fmduck_x95,
    fmduck_x101,
    fmduck_x112,
    (
      (
        (
          (
            p_v1_v2 - (
              s_v2 * fmduck_x20
            )
          ) * fmduck_x44
        ) - (
          fmduck_x47 * fmduck_x46
        )
      ) * fmduck_x56
    ) AS fmduck_x60,
    (
      fmduck_x46 * (
        -fmduck_x56
      )
    ) AS fmduck_x62,
    (
      fmduck_x53 AND (
        NOT fmduck_x84
      )
    ) AS fmduck_x86
  FROM fmduck_l7
), fmduck_l9 AS (
  SELECT
    pidx,
    n,
    s_v0,
    s_v1,
    s_v2,
    p_v0_v0,
    p_v0_v1,
    p_v0_v2,
    p_v1_v1,
    p_v1_v2,
    p_v2_v2,
    shift_0,
    ref_v0,
    shift_1,
    ref_v1,
    shift_2,
    ref_v2,
    fmduck_x18,
    fmduck_x19,
    fmduck_x20,
    fmduck_x21,
    fmduck_x23,
    fmduck_x27,
    fmduck_x33,
    fmduck_x38,
    fmduck_x44,
    fmduck_x46,
    fmduck_x47,
    fmduck_x50,
    fmduck_x53,
    fmduck_x56,
    fmduck_x60,
    fmduck_x62,
    fmduck_x82,
    fmduck_x84,
    fmduck_x86,
    fmduck_x94,
    fmduck_x95,
    fmduck_x101,
    fmduck_x112,
    CASE
      WHEN (
        fmduck_x33 - (
          (
            fmduck_x47 * fmduck_x47
          ) + (
            fmduck_x60 * fmduck_x60
          )
        )
      ) < 0
      THEN CAST(0 AS DOUBLE)
      ELSE (
        fmduck_x33 - (
          (
            fmduck_x47 * fmduck_x47
          ) + (
            fmduck_x60 * fmduck_x60
          )
        )
      )
    END AS fmduck_x67,
    (
      (
        fmduck_x47 + (
          fmduck_x62 * fmduck_x60
        )
      ) * fmduck_x38
    ) AS fmduck_x70,
    (
      (
        fmduck_x56 * fmduck_x60
      ) * fmduck_x44
    ) AS fmduck_x72,
    (
      (
        fmduck_x62 * fmduck_x101
      ) + (
        fmduck_x56 * (
          fmduck_x95 * fmduck_x44
        )
      )
    ) AS fmduck_x105
  FROM fmduck_l8
), fmduck_l10 AS (
  SELECT
    pidx,
    n,
    s_v0,
    s_v1,
    s_v2,
    p_v0_v0,
    p_v0_v1,
    p_v0_v2,
    p_v1_v1,
    p_v1_v2,
    p_v2_v2,
    shift_0,
    ref_v0,
    shift_1,
    ref_v1,
    shift_2,
    ref_v2,
    fmduck_x18,
    fmduck_x19,
    fmduck_x20,
    fmduck_x21,
    fmduck_x23,
    fmduck_x27,
    fmduck_x33,
    fmduck_x38,
    fmduck_x44,
    fmduck_x46,
    fmduck_x47,
    fmduck_x50,
    fmduck_x53,
    fmduck_x56,
    fmduck_x60,
    fmduck_x62,
    fmduck_x67,
    fmduck_x70,
    fmduck_x72,
    fmduck_x82,
    fmduck_x84,
    fmduck_x86,
    fmduck_x94,
    fmduck_x95,
    fmduck_x101,
    fmduck_x105,
    fmduck_x112,
    CASE
      WHEN (
        fmduck_x67 / NULLIF(
          CASE
            WHEN COALESCE(fmduck_x82 > CAST(0 AS DOUBLE), FALSE)
            THEN fmduck_x82
            ELSE CAST(NULL AS DOUBLE)
          END,
          0
        )
      ) >= 0
      THEN SQRT(
        (
          fmduck_x67 / NULLIF(
            CASE
              WHEN COALESCE(fmduck_x82 > CAST(0 AS DOUBLE), FALSE)
              THEN fmduck_x82
              ELSE CAST(NULL AS DOUBLE)
            END,
            0
          )
        )
      )
    END AS fmduck_x93,
    (
      fmduck_x67 / NULLIF(CASE WHEN fmduck_x112 THEN fmduck_x33 ELSE CAST(NULL AS DOUBLE) END, 0)
    ) AS fmduck_x115
  FROM fmduck_l9
)
SELECT
  pidx,
  n AS nobs,
  fmduck_x86 AS ok,
  CASE
    WHEN fmduck_x84
    THEN 'too few observations'
    WHEN (
      NOT fmduck_x53
    )
    THEN 'singular or collinear regressors'
    WHEN (
      NOT fmduck_x112
    )
    THEN 'dependent variable has no variation'
  END AS reason,
  CASE
    WHEN fmduck_x86
    THEN (
      (
        fmduck_x21 + (
          shift_2 + ref_v2
        )
      ) - (
        (
          fmduck_x94 * fmduck_x70
        ) + (
          fmduck_x95 * fmduck_x72
        )
      )
    )
    ELSE CAST(NULL AS DOUBLE)
  END AS e0,
  CASE WHEN fmduck_x86 THEN fmduck_x70 ELSE CAST(NULL AS DOUBLE) END AS e1,
  CASE WHEN fmduck_x86 THEN fmduck_x72 ELSE CAST(NULL AS DOUBLE) END AS e2,
  CASE
    WHEN fmduck_x86
    THEN (
      CASE
        WHEN (
          fmduck_x18 + (
            (
              fmduck_x101 * fmduck_x101
            ) + (
              fmduck_x105 * fmduck_x105
            )
          )
        ) >= 0
        THEN SQRT(
          (
            fmduck_x18 + (
              (
                fmduck_x101 * fmduck_x101
              ) + (
                fmduck_x105 * fmduck_x105
              )
            )
          )
        )
      END * fmduck_x93
    )
    ELSE CAST(NULL AS DOUBLE)
  END AS s0,
  CASE
    WHEN fmduck_x86
    THEN (
      (
        CASE
          WHEN (
            CAST(1 AS DOUBLE) + (
              fmduck_x62 * fmduck_x62
            )
          ) >= 0
          THEN SQRT((
            CAST(1 AS DOUBLE) + (
              fmduck_x62 * fmduck_x62
            )
          ))
        END * fmduck_x38
      ) * fmduck_x93
    )
    ELSE CAST(NULL AS DOUBLE)
  END AS s1,
  CASE
    WHEN fmduck_x86
    THEN (
      (
        CASE
          WHEN (
            fmduck_x56 * fmduck_x56
          ) >= 0
          THEN SQRT((
            fmduck_x56 * fmduck_x56
          ))
        END * fmduck_x44
      ) * fmduck_x93
    )
    ELSE CAST(NULL AS DOUBLE)
  END AS s2,
  CASE
    WHEN fmduck_x86
    THEN (
      CAST(1 AS DOUBLE) - fmduck_x115
    )
    ELSE CAST(NULL AS DOUBLE)
  END AS r2,
  CASE
    WHEN fmduck_x86
    THEN (
      CAST(1 AS DOUBLE) - (
        (
          fmduck_x115 * (
            CAST(n AS DOUBLE) - CAST(1 AS DOUBLE)
          )
        ) / NULLIF(fmduck_x82, 0)
      )
    )
    ELSE CAST(NULL AS DOUBLE)
  END AS adj_r2,
  CASE WHEN fmduck_x86 THEN fmduck_x93 ELSE CAST(NULL AS DOUBLE) END AS rmse
FROM fmduck_l10;

-- pass 2: lambda_t
SELECT
  CAST(c.period AS TEXT) AS period,
  CAST(c.period AS DATE) AS period_date,
  CAST(NULL AS TIMESTAMP) AS period_ts,
  CAST(NULL AS BIGINT) AS period_int,
  l.pidx AS period_index,
  l.e0,
  l.e1,
  l.e2,
  l.r2,
  l.adj_r2,
  l.nobs AS n,
  l.ok,
  COALESCE(l.reason, '') AS reason
FROM "fmduck_lambdas" AS l
JOIN "fmduck_calendar" AS c
  ON c.pidx = l.pidx
ORDER BY
  l.pidx;

-- factor series (Shanken)
SELECT
  c.pidx AS pidx,
  f."mkt" AS f0,
  f."smb" AS f1
FROM "factors" AS f
JOIN "fmduck_calendar" AS c
  ON f."period" = c.period
ORDER BY
  1;

-- pricing errors per asset
CREATE TEMPORARY TABLE "fmduck_pricing_errors" AS
WITH fmduck_shift AS (
  SELECT
    CAST('0.0' AS DOUBLE) AS shift_0
), panel AS (
  SELECT
    r.*,
    c.pidx AS fmduck_pidx
  FROM "panel" AS r
  JOIN "fmduck_calendar" AS c
    ON r."period" = c.period
), fac AS (
  SELECT
    f.*,
    c.pidx AS fmduck_pidx
  FROM "factors" AS f
  JOIN "fmduck_calendar" AS c
    ON f."period" = c.period
), obs AS (
  SELECT
    p."asset" AS asset,
    p.fmduck_pidx AS pidx,
    (
      (
        p."ret" - f."rf"
      ) - (
        l.e0 + l.e1 * (
          b.e1
        ) + l.e2 * (
          b.e2
        )
      )
    ) - sh.shift_0 AS v0
  FROM panel AS p
  CROSS JOIN fmduck_shift AS sh
  JOIN fac AS f
    ON f.fmduck_pidx = p.fmduck_pidx
  JOIN "fmduck_first_pass" AS b
    ON b.asset = p."asset" AND b.ok
  JOIN "fmduck_lambdas" AS l
    ON l.pidx = p.fmduck_pidx AND l.ok
  WHERE
    NOT (
      (
        p."ret" - f."rf"
      ) - (
        l.e0 + l.e1 * (
          b.e1
        ) + l.e2 * (
          b.e2
        )
      )
    ) IS NULL
), fmduck_ref AS (
  SELECT
    asset,
    AVG(v0) AS ref_v0
  FROM obs
  GROUP BY
    asset
), fmduck_centred AS (
  SELECT
    o.asset,
    r.ref_v0,
    o.v0 - r.ref_v0 AS v0
  FROM obs AS o
  JOIN fmduck_ref AS r
    ON o.asset = r.asset
), fmduck_moments AS (
  SELECT
    asset,
    COUNT(*) AS n,
    MIN(ref_v0) AS ref_v0,
    SUM(v0) AS s_v0,
    SUM(v0 * v0) AS p_v0_v0
  FROM fmduck_centred
  GROUP BY
    asset
), fmduck_l0 AS (
  SELECT
    m.*,
    sh.*
  FROM fmduck_moments AS m
  CROSS JOIN fmduck_shift AS sh
), fmduck_l1 AS (
  SELECT
    asset,
    n,
    s_v0,
    p_v0_v0,
    shift_0,
    ref_v0,
    (
      CAST(1 AS DOUBLE) / NULLIF(
        CASE
          WHEN COALESCE(CAST(n AS DOUBLE) > CAST(0 AS DOUBLE), FALSE)
          THEN CAST(n AS DOUBLE)
          ELSE CAST(1 AS DOUBLE)
        END,
        0
      )
    ) AS fmduck_x9,
    (
      CAST(n AS DOUBLE) - CAST(1 AS DOUBLE)
    ) AS fmduck_x15
  FROM fmduck_l0
), fmduck_l2 AS (
  SELECT
    asset,
    n,
    s_v0,
    p_v0_v0,
    shift_0,
    ref_v0,
    fmduck_x9,
    fmduck_x15,
    (
      s_v0 * fmduck_x9
    ) AS fmduck_x10,
    COALESCE(fmduck_x15 < CAST(1 AS DOUBLE), FALSE) AS fmduck_x17
  FROM fmduck_l1
), fmduck_l3 AS (
  SELECT
    asset,
    n,
    s_v0,
    p_v0_v0,
    shift_0,
    ref_v0,
    fmduck_x9,
    fmduck_x10,
    fmduck_x15,
    fmduck_x17,
    (
      p_v0_v0 - (
        s_v0 * fmduck_x10
      )
    ) AS fmduck_x12,
    (
      NOT fmduck_x17
    ) AS fmduck_x18
  FROM fmduck_l2
), fmduck_l4 AS (
  SELECT
    asset,
    n,
    s_v0,
    p_v0_v0,
    shift_0,
    ref_v0,
    fmduck_x9,
    fmduck_x10,
    fmduck_x12,
    fmduck_x15,
    fmduck_x17,
    fmduck_x18,
    CASE WHEN fmduck_x12 < 0 THEN CAST(0 AS DOUBLE) ELSE fmduck_x12 END AS fmduck_x13,
    COALESCE(fmduck_x12 > CAST(0 AS DOUBLE), FALSE) AS fmduck_x29
  FROM fmduck_l3
), fmduck_l5 AS (
  SELECT
    asset,
    n,
    s_v0,
    p_v0_v0,
    shift_0,
    ref_v0,
    fmduck_x9,
    fmduck_x10,
    fmduck_x12,
    fmduck_x13,
    fmduck_x15,
    fmduck_x17,
    fmduck_x18,
    fmduck_x29,
    CASE
      WHEN (
        fmduck_x13 / NULLIF(
          CASE
            WHEN COALESCE(fmduck_x15 > CAST(0 AS DOUBLE), FALSE)
            THEN fmduck_x15
            ELSE CAST(NULL AS DOUBLE)
          END,
          0
        )
      ) >= 0
      THEN SQRT(
        (
          fmduck_x13 / NULLIF(
            CASE
              WHEN COALESCE(fmduck_x15 > CAST(0 AS DOUBLE), FALSE)
              THEN fmduck_x15
              ELSE CAST(NULL AS DOUBLE)
            END,
            0
          )
        )
      )
    END AS fmduck_x25,
    (
      fmduck_x13 / NULLIF(CASE WHEN fmduck_x29 THEN fmduck_x12 ELSE CAST(NULL AS DOUBLE) END, 0)
    ) AS fmduck_x32
  FROM fmduck_l4
)
SELECT
  asset,
  n AS nobs,
  fmduck_x18 AS ok,
  CASE
    WHEN fmduck_x17
    THEN 'too few observations'
    WHEN COALESCE(CAST(n AS DOUBLE) > CAST(n AS DOUBLE), FALSE)
    THEN 'singular or collinear regressors'
    WHEN (
      NOT fmduck_x29
    )
    THEN 'dependent variable has no variation'
  END AS reason,
  CASE
    WHEN fmduck_x18
    THEN (
      fmduck_x10 + (
        shift_0 + ref_v0
      )
    )
    ELSE CAST(NULL AS DOUBLE)
  END AS e0,
  CASE
    WHEN fmduck_x18
    THEN (
      CASE WHEN fmduck_x9 >= 0 THEN SQRT(fmduck_x9) END * fmduck_x25
    )
    ELSE CAST(NULL AS DOUBLE)
  END AS s0,
  CASE
    WHEN fmduck_x18
    THEN (
      CAST(1 AS DOUBLE) - fmduck_x32
    )
    ELSE CAST(NULL AS DOUBLE)
  END AS r2,
  CASE
    WHEN fmduck_x18
    THEN (
      CAST(1 AS DOUBLE) - (
        (
          fmduck_x32 * (
            CAST(n AS DOUBLE) - CAST(1 AS DOUBLE)
          )
        ) / NULLIF(fmduck_x15, 0)
      )
    )
    ELSE CAST(NULL AS DOUBLE)
  END AS adj_r2,
  CASE WHEN fmduck_x18 THEN fmduck_x25 ELSE CAST(NULL AS DOUBLE) END AS rmse
FROM fmduck_l5;

-- pricing errors
SELECT
  CAST(p.asset AS TEXT) AS asset,
  CAST(NULL AS BIGINT) AS asset_int,
  p.e0 AS alpha,
  p.s0 AS std_error,
  p.e0 / p.s0 AS t_stat,
  p.nobs AS n_periods
FROM "fmduck_pricing_errors" AS p
ORDER BY
  1;

-- pass 1: regressions without an estimate
SELECT
  CAST(t.asset AS TEXT) AS asset,
  CAST(NULL AS BIGINT) AS asset_int,
  CAST(CAST(NULL AS TEXT) AS TEXT) AS period,
  CAST(NULL AS DATE) AS period_date,
  CAST(NULL AS TIMESTAMP) AS period_ts,
  CAST(NULL AS BIGINT) AS period_int,
  COALESCE(t.reason, '') AS reason,
  t.nobs
FROM "fmduck_first_pass" AS t
WHERE
  NOT t.ok
ORDER BY
  1;

-- coverage: the panel rows each step left out
WITH panel AS (
  SELECT
    r.*,
    c.pidx AS fmduck_pidx
  FROM "panel" AS r
  LEFT JOIN "fmduck_calendar" AS c
    ON r."period" = c.period
), fac AS (
  SELECT
    f.*,
    c.pidx AS fmduck_pidx
  FROM "factors" AS f
  JOIN "fmduck_calendar" AS c
    ON f."period" = c.period
), classified AS (
  SELECT
    CASE
      WHEN p.fmduck_pidx IS NULL
      THEN 'no_period'
      WHEN f."mkt" IS NULL OR f."smb" IS NULL OR f."rf" IS NULL
      THEN 'null_factor'
      WHEN (
        p."ret" - f."rf"
      ) IS NULL
      THEN 'null_return'
      WHEN b.asset IS NULL
      THEN 'no_beta_yet'
      WHEN l.pidx IS NULL OR NOT l.ok
      THEN 'cross_section'
      ELSE 'used'
    END AS category,
    CASE
      WHEN NOT p.fmduck_pidx IS NULL
      AND NOT (
        f."mkt"
      ) IS NULL
      AND NOT (
        f."smb"
      ) IS NULL
      AND NOT (
        p."ret" - f."rf"
      ) IS NULL
      THEN 1
      ELSE 0
    END AS pass1
  FROM panel AS p
  LEFT JOIN fac AS f
    ON f.fmduck_pidx = p.fmduck_pidx
  LEFT JOIN "fmduck_first_pass" AS b
    ON b.asset = p."asset" AND b.ok
  LEFT JOIN "fmduck_lambdas" AS l
    ON l.pidx = p.fmduck_pidx
)
SELECT
  category,
  COUNT(*) AS n
FROM classified
GROUP BY
  category
UNION ALL
SELECT
  'pass1_rows' AS category,
  SUM(pass1) AS n
FROM classified;

-- CSR: the test assets of pass 1
SELECT
  COUNT(*) AS n,
  MIN(nobs) AS lo,
  MAX(nobs) AS hi
FROM "fmduck_first_pass"
WHERE
  ok;

-- CSR: the balanced block of excess returns (only when every test asset has every period and N × T ≤ 20,000,000)
WITH fmduck_shift AS (
  SELECT
    CAST('0.0' AS DOUBLE) AS shift_0,
    CAST('0.0' AS DOUBLE) AS shift_1,
    CAST('0.0' AS DOUBLE) AS shift_2
), panel AS (
  SELECT
    r.*,
    c.pidx AS fmduck_pidx
  FROM "panel" AS r
  JOIN "fmduck_calendar" AS c
    ON r."period" = c.period
), fac AS (
  SELECT
    f.*,
    c.pidx AS fmduck_pidx
  FROM "factors" AS f
  JOIN "fmduck_calendar" AS c
    ON f."period" = c.period
), obs AS (
  SELECT
    p."asset" AS asset,
    p.fmduck_pidx AS pidx,
    (
      f."mkt"
    ) - sh.shift_0 AS v0,
    (
      f."smb"
    ) - sh.shift_1 AS v1,
    (
      p."ret" - f."rf"
    ) - sh.shift_2 AS v2
  FROM panel AS p
  CROSS JOIN fmduck_shift AS sh
  JOIN fac AS f
    ON f.fmduck_pidx = p.fmduck_pidx
  JOIN "fmduck_first_pass" AS b
    ON b.asset = p."asset" AND b.ok
  WHERE
    NOT (
      f."mkt"
    ) IS NULL
    AND NOT (
      f."smb"
    ) IS NULL
    AND NOT (
      p."ret" - f."rf"
    ) IS NULL
)
SELECT
  CAST(asset AS TEXT) AS asset,
  pidx,
  v2 AS y
FROM obs;
