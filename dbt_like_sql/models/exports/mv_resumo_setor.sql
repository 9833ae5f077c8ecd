/* ---
schema: mart
group: exports
materialized: materialized_view
unique_key: [setor]
description: Export totals per economic sector and the years it appears in (seed rpt.mv_resumo_setor).
owners: ["team:exports"]
tags: {layer: mart, domain: exports}
automation: eager   # after new files land; the daily 01:00 refresh is the refresh_export_reports_daily schedule
columns:
  setor: {description: Economic sector, tests: [not_null, unique]}
  total_usd: {description: Sum of valor_usd, tests: [not_null, {range: {min: 0}}]}
  anos: {description: "Years with exports in the sector, ascending"}
  updated_at: {description: When the summary was last refreshed (UTC)}
--- */
-- Pre-grouped by (setor, ano), as in mv_resumo_pais: a parallel hash aggregate instead of a sort.
WITH by_year AS (
    SELECT setor, ano, SUM(valor_usd) AS valor_usd
    FROM stg.exportacao
    GROUP BY setor, ano
)
SELECT
    setor,
    CAST(SUM(valor_usd) AS NUMERIC(18, 2)) AS total_usd,
    ARRAY_AGG(ano ORDER BY ano) AS anos,
    CAST(NOW() AT TIME ZONE 'UTC' AS TIMESTAMP) AS updated_at
FROM by_year
GROUP BY setor
