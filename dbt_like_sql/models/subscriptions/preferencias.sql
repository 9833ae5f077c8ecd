/* ---
schema: stg
name: preferencias
group: subscriptions
materialized: table
unique_key: [user_id]
description: >
  Preferences (seed table `preferencias`): one row per user, the preferences of their latest
  accepted config_atualizada (a JSON object, keys sorted); the command replaces the previous set.
owners: ["team:subscriptions"]
tags: {layer: stg, domain: subscriptions}
indexes: [[user_id]]
automation: eager
columns:
  user_id:
    description: User
    tests: [not_null, unique, {relationships: {to: stg.usuarios, field: user_id}}]
  preferencias: {description: JSON object of preference name -> value, tests: [not_null]}
  updated_by: {description: The config_atualizada command (correlation_id), tests: [not_null]}
  updated_at: {description: When it was set (UTC), tests: [not_null]}
--- */
SELECT user_id, preferencias, correlation_id AS updated_by, occurred_at AS updated_at
FROM (
    SELECT
        c.user_id,
        c.preferencias,
        c.correlation_id,
        c.occurred_at,
        ROW_NUMBER() OVER (PARTITION BY c.user_id ORDER BY c.seq DESC) AS latest
    FROM stg.subscription_commands AS c
    JOIN stg.usuarios AS u ON u.user_id = c.user_id  -- always true; makes stg.usuarios upstream
    WHERE c.event_type = 'config_atualizada' AND c.status = 'processed'
) AS p
WHERE p.latest = 1
