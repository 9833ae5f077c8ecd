/* ---
schema: stg
name: commerce_session_days
group: commerce
materialized: incremental
unique_key: [session_id, event_date]
# Recompute only the (session, day) groups that events merged since this table's high-water mark
# touched. ARRAY(...) is evaluated once, so PostgreSQL pushes the filter into the grouping and reads
# those sessions through the index on stg.commerce_events.session_id.
incremental_predicate: >-
  session_id = ANY(ARRAY(
    SELECT e.session_id FROM stg.commerce_events AS e
    WHERE e.merged_at > (SELECT COALESCE(MAX(last_merged_at), TIMESTAMP '1970-01-01') FROM {{ this }})
  ))
description: >
  One row per browsing session and UTC day: event counts per type, purchases and revenue. The marts
  aggregate this table (about a tenth of the events) instead of every event, so their distinct
  counts of users and sessions stay cheap as the clickstream grows.
owners: ["team:commerce"]
tags: {layer: stg, domain: commerce}
indexes: [[session_id, event_date], [event_date], [last_merged_at]]
automation: eager
columns:
  session_id: {description: Browsing session id, tests: [not_null]}
  event_date: {description: UTC day, tests: [not_null]}
  user_id: {description: "Shopper of the session (the smallest id if a session carried several)", tests: [not_null]}
  events: {description: All events of the session that day, tests: [not_null, {range: {min: 1}}]}
  purchases: {description: purchase events, tests: [not_null, {range: {min: 0}}]}
  revenue: {description: Sum of purchase amounts, tests: [not_null, {range: {min: 0}}]}
  last_merged_at: {description: Latest stg.commerce_events.merged_at among the group's events (the high-water mark), tests: [not_null]}
--- */
SELECT
    session_id,
    event_date,
    MIN(user_id) AS user_id,
    CAST(COUNT(*) AS BIGINT) AS events,
    CAST(SUM(CASE WHEN event_type = 'page_view' THEN 1 ELSE 0 END) AS BIGINT) AS page_views,
    CAST(SUM(CASE WHEN event_type = 'search' THEN 1 ELSE 0 END) AS BIGINT) AS searches,
    CAST(SUM(CASE WHEN event_type = 'add_to_cart' THEN 1 ELSE 0 END) AS BIGINT) AS add_to_carts,
    CAST(SUM(CASE WHEN event_type = 'remove_from_cart' THEN 1 ELSE 0 END) AS BIGINT) AS remove_from_carts,
    CAST(SUM(CASE WHEN event_type = 'purchase' THEN 1 ELSE 0 END) AS BIGINT) AS purchases,
    CAST(COALESCE(SUM(CASE WHEN event_type = 'purchase' THEN total_amount END), 0) AS NUMERIC(18, 2))
        AS revenue,
    MIN(event_timestamp) AS first_event_at,
    MAX(event_timestamp) AS last_event_at,
    MAX(merged_at) AS last_merged_at
FROM stg.commerce_events
GROUP BY session_id, event_date
