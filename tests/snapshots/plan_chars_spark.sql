-- check: repeated (asset, period) in table panel
SELECT
  COUNT(CASE WHEN fmduck_null THEN 1 END) AS n_null,
  COUNT(CASE WHEN fmduck_prev = fmduck_key THEN 1 END) AS n_rows
FROM (
  SELECT
    r.`asset` IS NULL OR r.`period` IS NULL AS fmduck_null,
    r.`period` AS fmduck_key,
    LAG(r.`period`) OVER (PARTITION BY r.`asset` ORDER BY r.`period` NULLS LAST) AS fmduck_prev
  FROM `panel` AS r
) AS keyed;

-- profile of table panel
CREATE OR REPLACE TEMPORARY VIEW `fmduck_profile_returns` AS
SELECT
  COUNT(*) AS n_rows,
  COUNT(`ret`) AS c0_count,
  SUM(CASE WHEN `ret` * 0 <> 0 THEN 1 ELSE 0 END) AS c0_nonfinite,
  CAST(MAX(CASE WHEN `ret` * 0 = 0 THEN ABS(`ret`) END) AS DOUBLE) AS c0_max_abs,
  CAST(MEDIAN(ABS(`ret`)) AS DOUBLE) AS c0_median_abs,
  SUM(CASE WHEN ABS(`ret`) > 1 THEN 1 ELSE 0 END) AS c0_above_one,
  CAST(AVG(CASE WHEN `ret` * 0 = 0 THEN `ret` END) AS DOUBLE) AS c0_mean,
  COUNT(`size`) AS c1_count,
  SUM(CASE WHEN `size` * 0 <> 0 THEN 1 ELSE 0 END) AS c1_nonfinite,
  CAST(MAX(CASE WHEN `size` * 0 = 0 THEN ABS(`size`) END) AS DOUBLE) AS c1_max_abs,
  CAST(AVG(CASE WHEN `size` * 0 = 0 THEN `size` END) AS DOUBLE) AS c1_mean,
  COUNT(`bm`) AS c2_count,
  SUM(CASE WHEN `bm` * 0 <> 0 THEN 1 ELSE 0 END) AS c2_nonfinite,
  CAST(MAX(CASE WHEN `bm` * 0 = 0 THEN ABS(`bm`) END) AS DOUBLE) AS c2_max_abs,
  CAST(AVG(CASE WHEN `bm` * 0 = 0 THEN `bm` END) AS DOUBLE) AS c2_mean
FROM `panel` AS r;

-- check: table panel values
SELECT
  *
FROM `fmduck_profile_returns`;

-- calendar
CREATE OR REPLACE TEMPORARY VIEW `fmduck_calendar` AS
SELECT
  period,
  ROW_NUMBER() OVER (ORDER BY period NULLS LAST) AS pidx
FROM (
  SELECT DISTINCT
    r.`period` AS period
  FROM `panel` AS r
  WHERE
    NOT r.`period` IS NULL
) AS keys;

-- fingerprints of table panel per period
SELECT
  CAST(r.`period` AS STRING) AS period,
  MIN(c.pidx) AS period_index,
  COUNT(*) AS n,
  CAST(BIT_XOR(XXHASH64(r.`asset`, r.`period`, r.`ret`, r.`size`, r.`bm`)) AS STRING) AS fingerprint
FROM `panel` AS r
LEFT JOIN `fmduck_calendar` AS c
  ON r.`period` = c.period
GROUP BY
  1;

-- pass 2: cross-sectional regressions per period
CREATE OR REPLACE TEMPORARY VIEW `fmduck_lambdas` AS
WITH fmduck_shift AS (
  SELECT
    CAST('0.0' AS DOUBLE) AS shift_0,
    CAST('0.0' AS DOUBLE) AS shift_1,
    COALESCE((
      SELECT
        c0_mean
      FROM `fmduck_profile_returns`
    ), 0) AS shift_2
), panel AS (
  SELECT
    r.*,
    c.pidx AS fmduck_pidx
  FROM (
    SELECT
      z.`asset`,
      z.`period`,
      z.`ret`,
      (
        z.fmduck_x_0 - AVG(z.fmduck_x_0) OVER (PARTITION BY z.`period`)
      ) / STDDEV_SAMP(z.fmduck_x_0) OVER (PARTITION BY z.`period`) AS `size`,
      (
        z.fmduck_x_1 - AVG(z.fmduck_x_1) OVER (PARTITION BY z.`period`)
      ) / STDDEV_SAMP(z.fmduck_x_1) OVER (PARTITION BY z.`period`) AS `bm`
    FROM (
      SELECT
        w.*,
        CAST(w.`size` AS DOUBLE) AS fmduck_x_0,
        CAST(w.`bm` AS DOUBLE) AS fmduck_x_1
      FROM (
        SELECT
          r.*
        FROM `panel` AS r
      ) AS w
    ) AS z
  ) AS r
  JOIN `fmduck_calendar` AS c
    ON r.`period` = c.period
), obs AS (
  SELECT
    p.`asset` AS asset,
    p.fmduck_pidx AS pidx,
    (
      lagged.`size`
    ) - sh.shift_0 AS v0,
    (
      lagged.`bm`
    ) - sh.shift_1 AS v1,
    (
      p.`ret`
    ) - sh.shift_2 AS v2
  FROM panel AS p
  CROSS JOIN fmduck_shift AS sh
  JOIN panel AS lagged
    ON lagged.`asset` = p.`asset` AND lagged.fmduck_pidx = p.fmduck_pidx - :char_lag
  WHERE
    NOT (
      lagged.`size`
    ) IS NULL
    AND NOT (
      lagged.`bm`
    ) IS NULL
    AND NOT (
      p.`ret`
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
  CAST(c.period AS STRING) AS period,
  CAST(c.period AS DATE) AS period_date,
  CAST(NULL AS TIMESTAMP_NTZ) AS period_ts,
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
FROM `fmduck_lambdas` AS l
JOIN `fmduck_calendar` AS c
  ON c.pidx = l.pidx
ORDER BY
  l.pidx NULLS LAST;

-- pricing errors per asset
CREATE OR REPLACE TEMPORARY VIEW `fmduck_pricing_errors` AS
WITH fmduck_shift AS (
  SELECT
    CAST('0.0' AS DOUBLE) AS shift_0
), panel AS (
  SELECT
    r.*,
    c.pidx AS fmduck_pidx
  FROM (
    SELECT
      z.`asset`,
      z.`period`,
      z.`ret`,
      (
        z.fmduck_x_0 - AVG(z.fmduck_x_0) OVER (PARTITION BY z.`period`)
      ) / STDDEV_SAMP(z.fmduck_x_0) OVER (PARTITION BY z.`period`) AS `size`,
      (
        z.fmduck_x_1 - AVG(z.fmduck_x_1) OVER (PARTITION BY z.`period`)
      ) / STDDEV_SAMP(z.fmduck_x_1) OVER (PARTITION BY z.`period`) AS `bm`
    FROM (
      SELECT
        w.*,
        CAST(w.`size` AS DOUBLE) AS fmduck_x_0,
        CAST(w.`bm` AS DOUBLE) AS fmduck_x_1
      FROM (
        SELECT
          r.*
        FROM `panel` AS r
      ) AS w
    ) AS z
  ) AS r
  JOIN `fmduck_calendar` AS c
    ON r.`period` = c.period
), obs AS (
  SELECT
    p.`asset` AS asset,
    p.fmduck_pidx AS pidx,
    (
      (
        p.`ret`
      ) - (
        l.e0 + l.e1 * (
          lagged.`size`
        ) + l.e2 * (
          lagged.`bm`
        )
      )
    ) - sh.shift_0 AS v0
  FROM panel AS p
  CROSS JOIN fmduck_shift AS sh
  JOIN panel AS lagged
    ON lagged.`asset` = p.`asset` AND lagged.fmduck_pidx = p.fmduck_pidx - :char_lag
  JOIN `fmduck_lambdas` AS l
    ON l.pidx = p.fmduck_pidx AND l.ok
  WHERE
    NOT (
      (
        p.`ret`
      ) - (
        l.e0 + l.e1 * (
          lagged.`size`
        ) + l.e2 * (
          lagged.`bm`
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
  CAST(p.asset AS STRING) AS asset,
  CAST(NULL AS BIGINT) AS asset_int,
  p.e0 AS alpha,
  p.s0 AS std_error,
  p.e0 / p.s0 AS t_stat,
  p.nobs AS n_periods
FROM `fmduck_pricing_errors` AS p
ORDER BY
  1 NULLS LAST;

-- coverage: the panel rows each step left out
WITH panel AS (
  SELECT
    r.*,
    c.pidx AS fmduck_pidx
  FROM (
    SELECT
      z.`asset`,
      z.`period`,
      z.`ret`,
      (
        z.fmduck_x_0 - AVG(z.fmduck_x_0) OVER (PARTITION BY z.`period`)
      ) / STDDEV_SAMP(z.fmduck_x_0) OVER (PARTITION BY z.`period`) AS `size`,
      (
        z.fmduck_x_1 - AVG(z.fmduck_x_1) OVER (PARTITION BY z.`period`)
      ) / STDDEV_SAMP(z.fmduck_x_1) OVER (PARTITION BY z.`period`) AS `bm`
    FROM (
      SELECT
        w.*,
        CAST(w.`size` AS DOUBLE) AS fmduck_x_0,
        CAST(w.`bm` AS DOUBLE) AS fmduck_x_1
      FROM (
        SELECT
          r.*
        FROM `panel` AS r
      ) AS w
    ) AS z
  ) AS r
  LEFT JOIN `fmduck_calendar` AS c
    ON r.`period` = c.period
), classified AS (
  SELECT
    CASE
      WHEN p.fmduck_pidx IS NULL
      THEN 'no_period'
      WHEN (
        p.`ret`
      ) IS NULL
      THEN 'null_return'
      WHEN (
        lagged.`size`
      ) IS NULL OR (
        lagged.`bm`
      ) IS NULL
      THEN 'null_char'
      WHEN l.pidx IS NULL OR NOT l.ok
      THEN 'cross_section'
      ELSE 'used'
    END AS category,
    0 AS pass1
  FROM panel AS p
  LEFT JOIN panel AS lagged
    ON lagged.`asset` = p.`asset` AND lagged.fmduck_pidx = p.fmduck_pidx - :char_lag
  LEFT JOIN `fmduck_lambdas` AS l
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
