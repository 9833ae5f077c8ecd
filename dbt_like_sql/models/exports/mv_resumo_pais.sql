/* ---
schema: mart
group: exports
materialized: materialized_view
unique_key: [pais]
description: >
  Export totals per destination country with its share of the grand total and the years it
  appears in (seed rpt.mv_resumo_pais; serves GET /metrics/pais).
owners: ["team:exports"]
tags: {layer: mart, domain: exports}
automation: eager   # after new files land; the daily 01:00 refresh is the refresh_export_reports_daily schedule
columns:
  pais: {description: Destination country, tests: [not_null, unique]}
  total_usd: {description: Sum of valor_usd, tests: [not_null, {range: {min: 0}}]}
  total_kg: {description: Sum of peso_kg, tests: [not_null, {range: {min: 0}}]}
  participacao_pct:
    description: Share of the grand total in percent, 2 decimals
    tests: [not_null, {range: {min: 0, max: 100}}]
  anos: {description: "Years with exports to the country, ascending"}
  updated_at: {description: When the summary was last refreshed (UTC)}
--- */
-- Division of NUMERICs is exact on PostgreSQL but DOUBLE on DuckDB: fixing the quotient to 10
-- decimals before rounding to 2 makes both engines round the same value the same way.
-- Grouping by (pais, ano) first is one parallel hash aggregate over the rows; the years' array is
-- then built from a few thousand groups (ARRAY_AGG(DISTINCT) would sort every row per country).
WITH by_year AS (
    SELECT pais, ano, SUM(valor_usd) AS valor_usd, SUM(peso_kg) AS peso_kg
    FROM stg.exportacao
    GROUP BY pais, ano
)
SELECT
    pais,
    CAST(SUM(valor_usd) AS NUMERIC(18, 2)) AS total_usd,
    CAST(SUM(peso_kg) AS NUMERIC(18, 3)) AS total_kg,
    CAST(
        ROUND(CAST(SUM(valor_usd) * 100.0 / NULLIF(SUM(SUM(valor_usd)) OVER (), 0) AS NUMERIC(38, 10)), 2)
        AS NUMERIC(5, 2)
    ) AS participacao_pct,
    ARRAY_AGG(ano ORDER BY ano) AS anos,
    CAST(NOW() AT TIME ZONE 'UTC' AS TIMESTAMP) AS updated_at
FROM by_year
GROUP BY pais
