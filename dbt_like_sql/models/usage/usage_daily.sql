/* ---
schema: mart
group: usage
materialized: materialized_view
unique_key: [usage_date, user_id, ide]
indexes: [[user_id, usage_date]]
description: >
  Daily consumption per developer and IDE (UTC days). Serves GET /insights/daily through the
  search/usage_daily index.
owners: ["team:usage"]
tags: {layer: mart, domain: usage}
automation: eager   # refresh as soon as new usage lands (orchestration decides)
columns:
  usage_date: {description: UTC day, tests: [not_null]}
  user_id: {description: Developer id, tests: [not_null]}
  ide: {description: IDE, tests: [not_null]}
  events: {description: Events that day, tests: [not_null, {range: {min: 1}}]}
  input_tokens: {description: Sum of input tokens, tests: [not_null, {range: {min: 0}}]}
  output_tokens: {description: Sum of output tokens, tests: [not_null, {range: {min: 0}}]}
  total_tokens:
    description: Sum of input + output tokens
    tests:
      - not_null
      - expression_is_true: {expression: "total_tokens = input_tokens + output_tokens", name: daily_total_is_sum}
  updated_at: {description: When the aggregate was refreshed (UTC)}
tests:
  - unique: [usage_date, user_id, ide]
--- */
SELECT
    usage_date,
    user_id,
    ide,
    MAX(user_name) AS user_name,
    MAX(team) AS team,
    CAST(COUNT(*) AS BIGINT) AS events,
    CAST(SUM(input_tokens) AS BIGINT) AS input_tokens,
    CAST(SUM(output_tokens) AS BIGINT) AS output_tokens,
    CAST(SUM(total_tokens) AS BIGINT) AS total_tokens,
    CAST(COUNT(DISTINCT model) AS INTEGER) AS models_used,
    CAST(ROUND(CAST(AVG(latency_ms) AS NUMERIC(18, 4)), 1) AS NUMERIC(12, 1)) AS avg_latency_ms,
    CAST(NOW() AT TIME ZONE 'UTC' AS TIMESTAMP) AS updated_at
FROM stg.usage_events
GROUP BY usage_date, user_id, ide
