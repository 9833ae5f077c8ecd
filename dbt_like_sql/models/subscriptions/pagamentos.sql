/* ---
schema: stg
name: pagamentos
group: subscriptions
materialized: table
unique_key: [pagamento_id]
description: >
  Payments (seed table `pagamentos`): one row per recorded payment. A payment for an unknown user
  or without an active subscription is not here (stg.command_outcomes says why it was rejected);
  a payment repeated under the same idempotency key is here once.
owners: ["team:subscriptions"]
tags: {layer: stg, domain: subscriptions}
indexes: [[pagamento_id], [user_id], [metodo], [paid_at]]
automation: eager
columns:
  pagamento_id: {description: The pagamento_registrado command (correlation_id), tests: [not_null, unique]}
  user_id:
    description: Payer
    tests: [not_null, {relationships: {to: stg.usuarios, field: user_id}}]
  assinatura_id: {description: Subscription active when paid, tests: [not_null]}
  valor: {description: Amount, tests: [not_null, {range: {min: 0}}]}
  metodo: {description: "Payment method (cartao_credito, cartao_debito, pix, boleto, ...)", tests: [not_null]}
  status: {description: "The provider's answer: aprovado or recusado", tests: [not_null, {accepted_values: [aprovado, recusado]}]}
  idempotency_key: {description: "Client key; unique per user when present"}
  paid_at: {description: When the payment happened (UTC), tests: [not_null]}
--- */
SELECT
    c.correlation_id AS pagamento_id,
    c.user_id,
    c.assinatura_id,
    c.valor,
    c.metodo,
    c.pagamento_status AS status,
    c.idempotency_key,
    c.occurred_at AS paid_at
FROM stg.subscription_commands AS c
-- Always true (a payment is recorded only for a created user): makes stg.usuarios upstream.
JOIN stg.usuarios AS u ON u.user_id = c.user_id
WHERE c.event_type = 'pagamento_registrado' AND c.status = 'processed' AND c.duplicate_of IS NULL
