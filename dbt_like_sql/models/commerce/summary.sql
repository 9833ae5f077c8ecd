/* ---
schema: mart
name: commerce_summary
group: commerce
materialized: materialized_view
unique_key: [id]
description: >
  One-row overview of the clickstream (serves /api/metrics/summary): events, users, sessions,
  transactions, orders, revenue, average order value and conversion rate over all data.
owners: ["team:commerce"]
tags: {layer: mart, domain: commerce}
automation: eager
columns:
  id: {description: Constant 1 (unique key for REFRESH CONCURRENTLY), tests: [not_null, unique]}
  total_events: {description: All events, tests: [not_null, {range: {min: 0}}]}
  total_revenue: {description: Sum of purchase amounts, tests: [not_null, {range: {min: 0}}]}
  conversion_rate_pct: {description: "Sessions with a purchase / sessions, in percent", tests: [{range: {min: 0, max: 100}}]}
--- */
-- From stg.commerce_session_days (a session spanning midnight has one row per day, hence the
-- distinct counts of sessions).
SELECT
    1 AS id,
    CAST(COALESCE(SUM(events), 0) AS BIGINT) AS total_events,
    CAST(COUNT(DISTINCT user_id) AS BIGINT) AS unique_users,
    CAST(COUNT(DISTINCT session_id) AS BIGINT) AS sessions,
    CAST(COALESCE(SUM(purchases), 0) AS BIGINT) AS transactions,
    CAST(COUNT(DISTINCT CASE WHEN purchases > 0 THEN session_id END) AS BIGINT) AS orders,
    CAST(COALESCE(SUM(revenue), 0) AS NUMERIC(18, 2)) AS total_revenue,
    CAST(
        ROUND(
            CAST(
                COALESCE(SUM(revenue), 0)
                / NULLIF(COUNT(DISTINCT CASE WHEN purchases > 0 THEN session_id END), 0)
                AS NUMERIC(38, 10)
            ),
            2
        ) AS NUMERIC(18, 2)
    ) AS avg_order_value,
    CAST(
        ROUND(
            CAST(
                COUNT(DISTINCT CASE WHEN purchases > 0 THEN session_id END) * 100.0
                / NULLIF(COUNT(DISTINCT session_id), 0) AS NUMERIC(38, 10)
            ),
            2
        ) AS NUMERIC(5, 2)
    ) AS conversion_rate_pct,
    MIN(first_event_at) AS first_event_at,
    MAX(last_event_at) AS last_event_at,
    CAST(NOW() AT TIME ZONE 'UTC' AS TIMESTAMP) AS updated_at
FROM stg.commerce_session_days
