/* ---
schema: mart
group: exports
materialized: materialized_view
unique_key: [id]
description: >
  One-row overview of all exports: totals, number of countries and sectors, years covered
  (seed rpt.mv_resumo_geral; serves GET /metrics/resumo). `id` is a constant key so the view
  can be refreshed CONCURRENTLY.
owners: ["team:exports"]
tags: {layer: mart, domain: exports}
automation: eager   # after new files land; the daily 01:00 refresh is the refresh_export_reports_daily schedule
columns:
  id: {description: Constant 1 (unique key for REFRESH CONCURRENTLY), tests: [not_null, unique]}
  total_usd: {description: Sum of valor_usd (0 when empty), tests: [not_null, {range: {min: 0}}]}
  total_kg: {description: Sum of peso_kg (0 when empty), tests: [not_null, {range: {min: 0}}]}
  paises_count: {description: Number of distinct countries, tests: [not_null]}
  setores_count: {description: Number of distinct sectors, tests: [not_null]}
  anos: {description: "Years covered, ascending"}
  updated_at: {description: When the summary was last refreshed (UTC)}
--- */
-- Grouping by (pais, setor, ano) first is one parallel hash aggregate over the rows; the DISTINCT
-- aggregates then sort a few thousand groups instead of every row three times.
WITH by_key AS (
    SELECT pais, setor, ano, SUM(valor_usd) AS valor_usd, SUM(peso_kg) AS peso_kg
    FROM stg.exportacao
    GROUP BY pais, setor, ano
)
SELECT
    1 AS id,
    CAST(COALESCE(SUM(valor_usd), 0) AS NUMERIC(18, 2)) AS total_usd,
    CAST(COALESCE(SUM(peso_kg), 0) AS NUMERIC(18, 3)) AS total_kg,
    CAST(COUNT(DISTINCT pais) AS INTEGER) AS paises_count,
    CAST(COUNT(DISTINCT setor) AS INTEGER) AS setores_count,
    ARRAY_AGG(DISTINCT ano ORDER BY ano) AS anos,
    CAST(NOW() AT TIME ZONE 'UTC' AS TIMESTAMP) AS updated_at
FROM by_key
