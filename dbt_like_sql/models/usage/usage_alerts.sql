/* ---
schema: mart
group: usage
materialized: table
description: >
  Usage alerts per developer and UTC day. daily_tokens: the day's tokens exceed
  USAGE_ALERT_DAILY_TOKENS. spike: the day's tokens reach USAGE_ALERT_SPIKE_MIN_TOKENS and exceed
  USAGE_ALERT_SPIKE_FACTOR times the developer's average over the previous USAGE_ALERT_TRAILING_DAYS
  calendar days (days without usage count as zero; needs at least one active day in that window).
  Thresholds come from stg.usage_alert_thresholds (written from the environment settings).
  Severity is critical at twice the threshold (or twice the spike factor). Serves GET /insights/alerts.
owners: ["team:usage"]
tags: {layer: mart, domain: usage}
automation: eager   # refresh as soon as new usage lands (orchestration decides)
columns:
  alert_id: {description: "alert_type:user_id:usage_date", tests: [not_null, unique]}
  alert_type: {description: daily_tokens or spike, tests: [not_null, {accepted_values: [daily_tokens, spike]}]}
  severity: {description: warning or critical, tests: [not_null, {accepted_values: [warning, critical]}]}
  user_id: {description: Developer id, tests: [not_null]}
  usage_date: {description: UTC day, tests: [not_null]}
  total_tokens:
    description: Tokens of the developer that day
    tests:
      - not_null
      - expression_is_true: {expression: "total_tokens > threshold", name: alert_exceeds_threshold}
  threshold: {description: "Limit crossed: daily limit, or spike factor x trailing average", tests: [not_null]}
  trailing_avg_tokens: {description: Average daily tokens over the trailing window}
  message: {description: Human-readable alert text, tests: [not_null]}
--- */
WITH thresholds AS (
    SELECT daily_tokens, spike_factor, trailing_days, spike_min_tokens
    FROM stg.usage_alert_thresholds
),
user_days AS (
    SELECT
        user_id,
        usage_date,
        MAX(user_name) AS user_name,
        MAX(team) AS team,
        CAST(COUNT(*) AS BIGINT) AS events,
        CAST(SUM(total_tokens) AS BIGINT) AS total_tokens
    FROM stg.usage_events
    GROUP BY user_id, usage_date
),
trailing_window AS (
    SELECT
        d.user_id,
        d.usage_date,
        CAST(COALESCE(SUM(p.total_tokens), 0) AS DOUBLE PRECISION) / MAX(t.trailing_days) AS trailing_avg_tokens,
        COUNT(p.usage_date) AS trailing_active_days
    FROM user_days AS d
    CROSS JOIN thresholds AS t
    LEFT JOIN user_days AS p
        ON p.user_id = d.user_id
        AND p.usage_date < d.usage_date
        AND p.usage_date >= d.usage_date - t.trailing_days
    GROUP BY d.user_id, d.usage_date
),
candidates AS (
    SELECT
        'daily_tokens' AS alert_type,
        d.user_id, d.user_name, d.team, d.usage_date, d.events, d.total_tokens,
        CAST(t.daily_tokens AS DOUBLE PRECISION) AS threshold,
        tr.trailing_avg_tokens,
        CASE WHEN d.total_tokens >= 2 * t.daily_tokens THEN 'critical' ELSE 'warning' END AS severity
    FROM user_days AS d
    CROSS JOIN thresholds AS t
    JOIN trailing_window AS tr ON tr.user_id = d.user_id AND tr.usage_date = d.usage_date
    WHERE d.total_tokens > t.daily_tokens
    UNION ALL
    SELECT
        'spike' AS alert_type,
        d.user_id, d.user_name, d.team, d.usage_date, d.events, d.total_tokens,
        t.spike_factor * tr.trailing_avg_tokens AS threshold,
        tr.trailing_avg_tokens,
        CASE
            WHEN d.total_tokens >= 2 * t.spike_factor * tr.trailing_avg_tokens THEN 'critical' ELSE 'warning'
        END AS severity
    FROM user_days AS d
    CROSS JOIN thresholds AS t
    JOIN trailing_window AS tr ON tr.user_id = d.user_id AND tr.usage_date = d.usage_date
    WHERE tr.trailing_active_days > 0
        AND d.total_tokens >= t.spike_min_tokens
        AND d.total_tokens > t.spike_factor * tr.trailing_avg_tokens
)
SELECT
    CAST(alert_type || ':' || user_id || ':' || CAST(usage_date AS VARCHAR(10)) AS VARCHAR(200)) AS alert_id,
    CAST(alert_type AS VARCHAR(20)) AS alert_type,
    CAST(severity AS VARCHAR(10)) AS severity,
    user_id,
    user_name,
    team,
    usage_date,
    events,
    total_tokens,
    CAST(ROUND(CAST(threshold AS NUMERIC(20, 2)), 1) AS NUMERIC(20, 1)) AS threshold,
    CAST(ROUND(CAST(trailing_avg_tokens AS NUMERIC(20, 2)), 1) AS NUMERIC(20, 1)) AS trailing_avg_tokens,
    CAST(
        user_id || ' used ' || CAST(total_tokens AS VARCHAR(20)) || ' tokens on '
        || CAST(usage_date AS VARCHAR(10))
        || CASE
            WHEN alert_type = 'daily_tokens'
                THEN ' (daily limit ' || CAST(CAST(threshold AS BIGINT) AS VARCHAR(20)) || ')'
            ELSE ' (' || CAST(CAST(ROUND(CAST(total_tokens / NULLIF(trailing_avg_tokens, 0) AS NUMERIC(20, 4)), 1)
                AS NUMERIC(20, 1)) AS VARCHAR(20)) || 'x the trailing daily average of '
                || CAST(CAST(ROUND(CAST(trailing_avg_tokens AS NUMERIC(20, 2)), 0) AS BIGINT) AS VARCHAR(20)) || ')'
        END
        AS VARCHAR(500)
    ) AS message,
    CAST(NOW() AT TIME ZONE 'UTC' AS TIMESTAMP) AS updated_at
FROM candidates
