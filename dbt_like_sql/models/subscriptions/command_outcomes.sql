/* ---
schema: stg
name: command_outcomes
group: subscriptions
materialized: table
unique_key: [correlation_id]
description: >
  The outcome of every command, one row per correlation_id (what GET /status/{correlation_id}
  answers and what is published to SUBSCRIPTIONS_RESPONSES_TOPIC): processed with the rows it wrote
  (row_ids, a JSON object table -> ids; a duplicate payment names the payment recorded first) or
  rejected with the reason. A malformed message has no correlation_id it can be trusted with: it
  is in raw.user_events_dead_letter, not here.
owners: ["team:subscriptions"]
tags: {layer: stg, domain: subscriptions}
indexes: [[correlation_id], [processed_at]]
automation: eager
columns:
  correlation_id: {description: The command, tests: [not_null, unique]}
  status: {description: processed or rejected, tests: [not_null, {accepted_values: [processed, rejected]}]}
  reason: {description: "Why rejected (unknown_user, no_subscription, subscription_cancelled, ...)"}
  row_ids: {description: "JSON object {table: [ids]} of the rows the command wrote (NULL when rejected)"}
  processed_at: {description: When the command reached the warehouse (its ingest batch), tests: [not_null]}
--- */
SELECT
    c.correlation_id,
    c.event_type,
    c.user_id,
    c.status,
    c.reason,
    CAST(
        CASE
            WHEN c.status = 'rejected' THEN NULL
            WHEN c.event_type = 'usuario_criado' THEN '{"usuarios": ["' || c.user_id || '"]}'
            WHEN c.event_type = 'config_atualizada' THEN '{"preferencias": ["' || c.user_id || '"]}'
            WHEN c.event_type = 'pagamento_registrado'
                THEN '{"pagamentos": ["' || COALESCE(c.duplicate_of, c.correlation_id) || '"]}'
            ELSE '{"assinaturas": ["' || c.assinatura_id || '"], "assinaturas_historico": ["'
                || c.correlation_id || '"]}'
        END AS TEXT
    ) AS row_ids,
    c.occurred_at,
    c.ingest_at AS processed_at
FROM stg.subscription_commands AS c
