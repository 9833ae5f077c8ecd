/* ---
schema: mart
name: commerce_realtime_metrics
group: commerce
materialized: view
description: >
  The last minute of the clickstream, computed at query time (a view, so it is never stale):
  events per type, active users and sessions, transactions and revenue (seed /api/metrics/realtime).
owners: ["team:commerce"]
tags: {layer: mart, domain: commerce}
automation: eager   # (re)created after new events, so it exists wherever events landed (files too)
columns:
  events: {description: Events with event_timestamp in the last 60 s (UTC), tests: [not_null]}
  revenue: {description: Purchase amounts in the window, tests: [not_null, {range: {min: 0}}]}
--- */
SELECT
    CAST(COUNT(*) AS BIGINT) AS events,
    CAST(COALESCE(SUM(CASE WHEN event_type = 'page_view' THEN 1 ELSE 0 END), 0) AS BIGINT) AS page_views,
    CAST(COALESCE(SUM(CASE WHEN event_type = 'search' THEN 1 ELSE 0 END), 0) AS BIGINT) AS searches,
    CAST(COALESCE(SUM(CASE WHEN event_type = 'add_to_cart' THEN 1 ELSE 0 END), 0) AS BIGINT) AS add_to_carts,
    CAST(COALESCE(SUM(CASE WHEN event_type = 'remove_from_cart' THEN 1 ELSE 0 END), 0) AS BIGINT) AS remove_from_carts,
    CAST(COALESCE(SUM(CASE WHEN event_type = 'purchase' THEN 1 ELSE 0 END), 0) AS BIGINT) AS transactions,
    CAST(COALESCE(SUM(CASE WHEN event_type = 'purchase' THEN total_amount END), 0) AS NUMERIC(18, 2))
        AS revenue,
    CAST(COUNT(DISTINCT user_id) AS BIGINT) AS active_users,
    CAST(COUNT(DISTINCT session_id) AS BIGINT) AS active_sessions,
    CAST(NOW() AT TIME ZONE 'UTC' AS TIMESTAMP) - INTERVAL '1 minute' AS window_start,
    CAST(NOW() AT TIME ZONE 'UTC' AS TIMESTAMP) AS window_end
FROM stg.commerce_events
WHERE event_timestamp >= CAST(NOW() AT TIME ZONE 'UTC' AS TIMESTAMP) - INTERVAL '1 minute'
