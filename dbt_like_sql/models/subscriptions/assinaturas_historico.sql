/* ---
schema: stg
name: assinaturas_historico
group: subscriptions
materialized: table
unique_key: [version_id]
description: >
  Subscription history, SCD type 2 (seed table `assinaturas` with its history): one version per
  accepted create, plan change or cancellation, valid from its command's occurred_at until the next
  version of the same user (valid_to NULL = current). A cancellation opens a `cancelada` version
  that keeps the plan and price it ended; a later create starts a new subscription (new assinatura_id).
owners: ["team:subscriptions"]
tags: {layer: stg, domain: subscriptions}
indexes: [[version_id], [user_id, valid_from], [assinatura_id]]
automation: eager
columns:
  version_id: {description: The command that opened the version (correlation_id), tests: [not_null, unique]}
  assinatura_id: {description: The subscription (correlation_id of its creation), tests: [not_null]}
  user_id:
    description: Subscriber
    tests: [not_null, {relationships: {to: stg.usuarios, field: user_id}}]
  change_type: {description: "criada, alterada or cancelada", tests: [not_null, {accepted_values: [criada, alterada, cancelada]}]}
  status: {description: "ativa or cancelada", tests: [not_null, {accepted_values: [ativa, cancelada]}]}
  plano: {description: Plan of the version, tests: [not_null]}
  valor_mensal: {description: Monthly price of the plan, tests: [not_null, {range: {min: 0}}]}
  valid_from: {description: Start of the version (UTC), tests: [not_null]}
  valid_to: {description: "End of the version (the next version's valid_from), NULL while current"}
  is_current: {description: The user's current version, tests: [not_null]}
--- */
WITH changes AS (
    SELECT
        c.correlation_id,
        c.assinatura_id,
        c.user_id,
        c.seq,
        c.event_type,
        c.plano,
        c.valor_mensal,
        c.occurred_at
    FROM stg.subscription_commands AS c
    -- Always true (a subscription command is processed only for a created user): makes stg.usuarios
    -- upstream, so the relationships test runs after it is built.
    JOIN stg.usuarios AS u ON u.user_id = c.user_id
    WHERE c.status = 'processed'
        AND c.event_type IN ('assinatura_criada', 'assinatura_alterada', 'assinatura_cancelada')
)
SELECT
    ch.correlation_id AS version_id,
    ch.assinatura_id,
    ch.user_id,
    CAST(REPLACE(ch.event_type, 'assinatura_', '') AS VARCHAR(16)) AS change_type,
    CAST(CASE WHEN ch.event_type = 'assinatura_cancelada' THEN 'cancelada' ELSE 'ativa' END AS VARCHAR(16))
        AS status,
    CASE
        WHEN ch.event_type = 'assinatura_cancelada'
            THEN LAG(ch.plano) OVER (PARTITION BY ch.user_id ORDER BY ch.seq)
        ELSE ch.plano
    END AS plano,
    CASE
        WHEN ch.event_type = 'assinatura_cancelada'
            THEN LAG(ch.valor_mensal) OVER (PARTITION BY ch.user_id ORDER BY ch.seq)
        ELSE ch.valor_mensal
    END AS valor_mensal,
    ch.occurred_at AS valid_from,
    LEAD(ch.occurred_at) OVER (PARTITION BY ch.user_id ORDER BY ch.seq) AS valid_to,
    LEAD(ch.seq) OVER (PARTITION BY ch.user_id ORDER BY ch.seq) IS NULL AS is_current
FROM changes AS ch
