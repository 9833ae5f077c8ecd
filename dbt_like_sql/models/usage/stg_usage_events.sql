/* ---
schema: stg
name: usage_events
group: usage
materialized: table
description: >
  AI-assistant usage events, one row per event (latest version of each document), from both raw
  sources: MongoDB (raw.usage_events) and landed JSON files (raw.usage_event_files). Text trimmed,
  IDE lower-cased, total tokens and the UTC usage date derived.
owners: ["team:usage"]
tags: {layer: stg, domain: usage}
automation: eager   # refresh as soon as new usage lands (orchestration decides)
indexes: [[user_id, usage_date], [usage_date]]
columns:
  event_id: {description: Document id (ObjectId hex), tests: [not_null, unique]}
  user_id: {description: Developer id, tests: [not_null]}
  user_name: {description: Display name (user id when unknown)}
  team: {description: Team of the developer ('unknown' when not reported)}
  ide: {description: "IDE that sent the event, lower case", tests: [not_null]}
  model: {description: Model that answered, tests: [not_null]}
  feature: {description: "chat, completion, edit, agent ('unknown' when not reported)"}
  prompt: {description: Prompt text sent by the developer}
  response: {description: Response text of the assistant}
  input_tokens: {description: Prompt plus context tokens, tests: [not_null, {range: {min: 0}}]}
  output_tokens: {description: Generated tokens, tests: [not_null, {range: {min: 0}}]}
  total_tokens:
    description: input_tokens + output_tokens
    tests:
      - not_null
      - expression_is_true: {expression: "total_tokens = input_tokens + output_tokens", name: total_is_input_plus_output}
  created_at: {description: Event time (UTC), tests: [not_null]}
  usage_date: {description: UTC calendar day of the event, tests: [not_null]}
  source_updated_at: {description: "Change time of the version kept (the source's updated_at)", tests: [not_null]}
  source_kind: {description: Where the kept version came from, tests: [not_null, {accepted_values: [mongodb, file]}]}
--- */
WITH unioned AS (
    SELECT
        event_id, user_id, user_name, team, ide, model, feature, language, prompt, response,
        input_tokens, output_tokens, latency_ms, created_at, source_updated_at,
        'mongodb' AS source_kind, source AS source_name, ingested_at
    FROM raw.usage_events
    UNION ALL
    SELECT
        event_id, user_id, user_name, team, ide, model, feature, language, prompt, response,
        input_tokens, output_tokens, latency_ms, created_at, source_updated_at,
        'file' AS source_kind, ingest_source AS source_name, ingest_at AS ingested_at
    FROM raw.usage_event_files
),
ranked AS (
    SELECT
        event_id, user_id, user_name, team, ide, model, feature, language, prompt, response,
        input_tokens, output_tokens, latency_ms, created_at, source_updated_at,
        source_kind, source_name, ingested_at,
        ROW_NUMBER() OVER (
            PARTITION BY event_id ORDER BY source_updated_at DESC, source_kind DESC, ingested_at DESC
        ) AS version_rank
    FROM unioned
)
SELECT
    CAST(event_id AS VARCHAR(64)) AS event_id,
    CAST(TRIM(user_id) AS VARCHAR(100)) AS user_id,
    CAST(COALESCE(NULLIF(TRIM(user_name), ''), TRIM(user_id)) AS VARCHAR(200)) AS user_name,
    CAST(COALESCE(NULLIF(TRIM(team), ''), 'unknown') AS VARCHAR(100)) AS team,
    CAST(LOWER(TRIM(ide)) AS VARCHAR(50)) AS ide,
    CAST(TRIM(model) AS VARCHAR(100)) AS model,
    CAST(COALESCE(NULLIF(TRIM(feature), ''), 'unknown') AS VARCHAR(50)) AS feature,
    CAST(language AS VARCHAR(50)) AS language,
    prompt,
    response,
    CAST(input_tokens AS BIGINT) AS input_tokens,
    CAST(output_tokens AS BIGINT) AS output_tokens,
    CAST(input_tokens + output_tokens AS BIGINT) AS total_tokens,
    CAST(latency_ms AS BIGINT) AS latency_ms,
    CAST(created_at AS TIMESTAMP) AS created_at,
    CAST(created_at AS DATE) AS usage_date,
    CAST(source_updated_at AS TIMESTAMP) AS source_updated_at,
    CAST(source_kind AS VARCHAR(10)) AS source_kind,
    CAST(source_name AS VARCHAR(200)) AS source_name,
    CAST(ingested_at AS TIMESTAMP) AS ingested_at
FROM ranked
WHERE version_rank = 1
