/* ---
schema: stg
name: usuarios
group: subscriptions
materialized: table
unique_key: [user_id]
description: >
  Users (seed table `usuarios`), current state: one row per user created by an accepted
  usuario_criado, with the state of their subscription and when they last changed anything.
owners: ["team:subscriptions"]
tags: {layer: stg, domain: subscriptions}
indexes: [[user_id], [created_at]]
automation: eager
columns:
  user_id: {description: User id, tests: [not_null, unique]}
  nome: {description: Name, tests: [not_null]}
  email: {description: E-mail, tests: [not_null]}
  created_at: {description: When the user was created (UTC), tests: [not_null]}
  created_by: {description: The usuario_criado command (correlation_id), tests: [not_null, unique]}
  commands_processed: {description: Accepted commands of the user, tests: [not_null, {range: {min: 1}}]}
  updated_at: {description: Latest accepted command of the user, tests: [not_null]}
--- */
SELECT
    u.user_id,
    u.nome,
    u.email,
    u.occurred_at AS created_at,
    u.correlation_id AS created_by,
    CAST(a.processed AS BIGINT) AS commands_processed,
    a.updated_at
FROM stg.subscription_commands AS u
JOIN (
    SELECT user_id, COUNT(*) AS processed, MAX(occurred_at) AS updated_at
    FROM stg.subscription_commands
    WHERE status = 'processed'
    GROUP BY user_id
) AS a ON a.user_id = u.user_id
WHERE u.event_type = 'usuario_criado' AND u.status = 'processed'
