/* ---
schema: mart
group: usage
materialized: materialized_view
unique_key: [user_id]
indexes: [[usage_rank]]
description: >
  Token consumption per developer with their rank (1 = most tokens; ties broken by user id) and
  share of all tokens. Serves GET /insights/top-users through the search/usage_top_users index.
owners: ["team:usage"]
tags: {layer: mart, domain: usage}
automation: eager   # refresh as soon as new usage lands (orchestration decides)
columns:
  user_id: {description: Developer id, tests: [not_null, unique]}
  usage_rank: {description: Rank by total tokens (1 = highest), tests: [not_null, unique, {range: {min: 1}}]}
  events: {description: Number of usage events, tests: [not_null, {range: {min: 1}}]}
  input_tokens: {description: Sum of input tokens, tests: [not_null, {range: {min: 0}}]}
  output_tokens: {description: Sum of output tokens, tests: [not_null, {range: {min: 0}}]}
  total_tokens:
    description: Sum of input + output tokens
    tests:
      - not_null
      - expression_is_true: {expression: "total_tokens = input_tokens + output_tokens", name: user_total_is_sum}
  share_pct: {description: Share of all tokens in percent (4 decimals), tests: [not_null, {range: {min: 0, max: 100}}]}
  active_days: {description: Days with at least one event, tests: [not_null, {range: {min: 1}}]}
  updated_at: {description: When the aggregate was refreshed (UTC)}
--- */
SELECT
    user_id,
    MAX(user_name) AS user_name,
    MAX(team) AS team,
    CAST(COUNT(*) AS BIGINT) AS events,
    CAST(SUM(input_tokens) AS BIGINT) AS input_tokens,
    CAST(SUM(output_tokens) AS BIGINT) AS output_tokens,
    CAST(SUM(total_tokens) AS BIGINT) AS total_tokens,
    CAST(COUNT(DISTINCT usage_date) AS INTEGER) AS active_days,
    CAST(COUNT(DISTINCT ide) AS INTEGER) AS ides_used,
    MIN(created_at) AS first_seen_at,
    MAX(created_at) AS last_seen_at,
    CAST(ROUND(CAST(AVG(latency_ms) AS NUMERIC(18, 4)), 1) AS NUMERIC(12, 1)) AS avg_latency_ms,
    CAST(
        ROUND(CAST(SUM(total_tokens) * 100.0 / NULLIF(SUM(SUM(total_tokens)) OVER (), 0) AS NUMERIC(38, 10)), 4)
        AS NUMERIC(9, 4)
    ) AS share_pct,
    CAST(ROW_NUMBER() OVER (ORDER BY SUM(total_tokens) DESC, user_id) AS INTEGER) AS usage_rank,
    CAST(NOW() AT TIME ZONE 'UTC' AS TIMESTAMP) AS updated_at
FROM stg.usage_events
GROUP BY user_id
