/* ---
schema: stg
name: commerce_user_event_types
group: commerce
materialized: incremental
unique_key: [user_id, event_type]
# Recompute only the users with events merged since this table's high-water mark (see
# stg.commerce_session_days for the ARRAY(...) form).
incremental_predicate: >-
  user_id = ANY(ARRAY(
    SELECT e.user_id FROM stg.commerce_events AS e
    WHERE e.merged_at > (SELECT COALESCE(MAX(last_merged_at), TIMESTAMP '1970-01-01') FROM {{ this }})
  ))
description: >
  One row per shopper and event type: events, first and last event. Serves the distinct-user counts
  of the event-type distribution without scanning every event.
owners: ["team:commerce"]
tags: {layer: stg, domain: commerce}
indexes: [[user_id, event_type], [last_merged_at]]
automation: eager
columns:
  user_id: {description: Shopper id, tests: [not_null]}
  event_type: {description: Event type, tests: [not_null]}
  events: {description: Events of the type by the user, tests: [not_null, {range: {min: 1}}]}
  last_merged_at: {description: Latest stg.commerce_events.merged_at among the group's events (the high-water mark), tests: [not_null]}
--- */
SELECT
    user_id,
    event_type,
    CAST(COUNT(*) AS BIGINT) AS events,
    MIN(event_timestamp) AS first_event_at,
    MAX(event_timestamp) AS last_event_at,
    MAX(merged_at) AS last_merged_at
FROM stg.commerce_events
GROUP BY user_id, event_type
