/* ---
schema: mart
name: commerce_daily_metrics
group: commerce
materialized: materialized_view
unique_key: [event_date]
description: >
  One row per UTC day (seed materialized view `daily_metrics`; serves /api/metrics/timeline): events
  per type, distinct users and sessions, transactions, orders (sessions that checked out), revenue
  and the session conversion rate (orders / sessions).
owners: ["team:commerce"]
tags: {layer: mart, domain: commerce}
automation: eager
columns:
  event_date: {description: UTC day, tests: [not_null, unique]}
  events: {description: All events, tests: [not_null, {range: {min: 1}}]}
  page_views: {description: page_view events, tests: [not_null]}
  searches: {description: search events, tests: [not_null]}
  add_to_carts: {description: add_to_cart events, tests: [not_null]}
  remove_from_carts: {description: remove_from_cart events, tests: [not_null]}
  transactions: {description: purchase events, tests: [not_null]}
  orders: {description: Sessions with at least one purchase that day, tests: [not_null, {range: {min: 0}}]}
  revenue: {description: Sum of total_amount, tests: [not_null, {range: {min: 0}}]}
  conversion_rate_pct: {description: orders / sessions in percent, tests: [not_null, {range: {min: 0, max: 100}}]}
--- */
-- From stg.commerce_session_days: one row per (session, day), so sessions per day is a row count
-- and orders (sessions with a purchase that day) a conditional one.
SELECT
    event_date,
    CAST(SUM(events) AS BIGINT) AS events,
    CAST(SUM(page_views) AS BIGINT) AS page_views,
    CAST(SUM(searches) AS BIGINT) AS searches,
    CAST(SUM(add_to_carts) AS BIGINT) AS add_to_carts,
    CAST(SUM(remove_from_carts) AS BIGINT) AS remove_from_carts,
    CAST(SUM(purchases) AS BIGINT) AS transactions,
    CAST(COUNT(DISTINCT user_id) AS BIGINT) AS unique_users,
    CAST(COUNT(*) AS BIGINT) AS sessions,
    CAST(SUM(CASE WHEN purchases > 0 THEN 1 ELSE 0 END) AS BIGINT) AS orders,
    CAST(SUM(revenue) AS NUMERIC(18, 2)) AS revenue,
    CAST(
        ROUND(CAST(SUM(CASE WHEN purchases > 0 THEN 1 ELSE 0 END) * 100.0 / COUNT(*) AS NUMERIC(38, 10)), 2)
        AS NUMERIC(5, 2)
    ) AS conversion_rate_pct,
    CAST(NOW() AT TIME ZONE 'UTC' AS TIMESTAMP) AS updated_at
FROM stg.commerce_session_days
GROUP BY event_date
