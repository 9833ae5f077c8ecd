/* ---
schema: stg
name: exportacao
group: exports
materialized: table
description: >
  Brazilian export statistics, one row per valid source-file row, typed and trimmed exactly as
  the seed's stg.exportacao (the raw lineage columns source_line is dropped; ingest_* kept for audit).
owners: ["team:exports"]
tags: {layer: stg, domain: exports}
indexes: [[ano, pais], [setor], [ingest_batch]]
automation: eager   # rebuild as soon as a new raw batch lands (orchestration decides)
columns:
  ano: {description: Export year, tests: [not_null]}
  mes: {description: Export month (1-12), tests: [not_null, {range: {min: 1, max: 12}}]}
  pais: {description: Destination country, tests: [not_null]}
  setor: {description: Economic sector, tests: [not_null]}
  ncm:
    description: 8-digit NCM (Mercosur Common Nomenclature) product code
    tests: [not_null, {expression_is_true: {expression: "char_length(ncm) = 8", name: ncm_has_8_chars}}]
  valor_usd: {description: FOB value in USD, tests: [not_null, {range: {min: 0}}]}
  peso_kg: {description: Net weight in kg, tests: [not_null, {range: {min: 0}}]}
  ingest_at: {description: When the row was loaded, tests: [not_null]}
  ingest_batch: {description: Load batch id, tests: [not_null]}
  ingest_source: {description: Source file name, tests: [not_null]}
--- */
SELECT
    CAST(ano AS INTEGER) AS ano,
    CAST(mes AS INTEGER) AS mes,
    CAST(TRIM(pais) AS VARCHAR(100)) AS pais,
    CAST(TRIM(setor) AS VARCHAR(100)) AS setor,
    CAST(TRIM(ncm) AS VARCHAR(20)) AS ncm,
    CAST(valor_usd AS NUMERIC(15, 2)) AS valor_usd,
    CAST(peso_kg AS NUMERIC(15, 3)) AS peso_kg,
    CAST(ingest_at AS TIMESTAMP) AS ingest_at,
    CAST(TRIM(ingest_batch) AS VARCHAR(50)) AS ingest_batch,
    CAST(TRIM(ingest_source) AS VARCHAR(100)) AS ingest_source
FROM raw.exportacao
