/* ---
schema: mart
name: commerce_event_type_distribution
group: commerce
materialized: materialized_view
unique_key: [event_type]
description: Events per type with their share of all events (serves /api/metrics/event-types).
owners: ["team:commerce"]
tags: {layer: mart, domain: commerce}
automation: eager
columns:
  event_type: {description: Event type, tests: [not_null, unique]}
  events: {description: Events of the type, tests: [not_null, {range: {min: 1}}]}
  share_pct: {description: Share of all events in percent, tests: [not_null, {range: {min: 0, max: 100}}]}
  unique_users: {description: Distinct users with an event of the type, tests: [not_null]}
  first_event_at: {description: Earliest event of the type (UTC)}
  last_event_at: {description: Latest event of the type (UTC)}
--- */
-- From stg.commerce_user_event_types: one row per (user, type), so distinct users are a row count.
SELECT
    event_type,
    CAST(SUM(events) AS BIGINT) AS events,
    CAST(ROUND(CAST(SUM(events) * 100.0 / SUM(SUM(events)) OVER () AS NUMERIC(38, 10)), 2) AS NUMERIC(5, 2))
        AS share_pct,
    CAST(COUNT(*) AS BIGINT) AS unique_users,
    MIN(first_event_at) AS first_event_at,
    MAX(last_event_at) AS last_event_at,
    CAST(NOW() AT TIME ZONE 'UTC' AS TIMESTAMP) AS updated_at
FROM stg.commerce_user_event_types
GROUP BY event_type
