/* ---
schema: stg
name: assinaturas
group: subscriptions
materialized: table
unique_key: [user_id]
description: >
  Current subscription of each user who ever subscribed (seed table `assinaturas`): the current
  version of stg.assinaturas_historico, with when the subscription started and, if cancelled, when.
owners: ["team:subscriptions"]
tags: {layer: stg, domain: subscriptions}
indexes: [[user_id], [assinatura_id], [status, plano]]
automation: eager
columns:
  user_id:
    description: Subscriber (one current subscription per user)
    tests: [not_null, unique, {relationships: {to: stg.usuarios, field: user_id}}]
  assinatura_id: {description: The subscription (correlation_id of its creation), tests: [not_null, unique]}
  status: {description: "ativa or cancelada", tests: [not_null, {accepted_values: [ativa, cancelada]}]}
  plano: {description: Current plan (the ended one when cancelled), tests: [not_null]}
  valor_mensal: {description: Monthly price, tests: [not_null, {range: {min: 0}}]}
  started_at: {description: When the subscription was created, tests: [not_null]}
  cancelled_at: {description: When it was cancelled (NULL while active)}
  updated_at: {description: Start of the current version, tests: [not_null]}
--- */
SELECT
    h.user_id,
    h.assinatura_id,
    h.status,
    h.plano,
    h.valor_mensal,
    s.started_at,
    CASE WHEN h.status = 'cancelada' THEN h.valid_from END AS cancelled_at,
    h.valid_from AS updated_at
FROM stg.assinaturas_historico AS h
JOIN (
    SELECT assinatura_id, MIN(valid_from) AS started_at
    FROM stg.assinaturas_historico
    GROUP BY assinatura_id
) AS s ON s.assinatura_id = h.assinatura_id
WHERE h.is_current
