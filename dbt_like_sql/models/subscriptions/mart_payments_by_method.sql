/* ---
schema: mart
name: payments_by_method
group: subscriptions
materialized: materialized_view
unique_key: [metodo]
description: >
  Recorded payments per method (a payment repeated under one idempotency key counts once): how many
  the provider approved (aprovado) or declined (recusado), the rates, and the approved amount.
owners: ["team:subscriptions"]
tags: {layer: mart, domain: subscriptions}
automation: eager
columns:
  metodo: {description: Payment method, tests: [not_null, unique]}
  payments: {description: Recorded payments, tests: [not_null, {range: {min: 1}}]}
  succeeded: {description: Approved payments, tests: [not_null, {range: {min: 0}}]}
  failed: {description: Declined payments, tests: [not_null, {range: {min: 0}}]}
  success_rate_pct: {description: succeeded / payments in percent, tests: [not_null, {range: {min: 0, max: 100}}]}
  failure_rate_pct: {description: failed / payments in percent, tests: [not_null, {range: {min: 0, max: 100}}]}
  amount_succeeded: {description: Sum of approved amounts, tests: [not_null, {range: {min: 0}}]}
--- */
SELECT
    metodo,
    CAST(COUNT(*) AS BIGINT) AS payments,
    CAST(SUM(CASE WHEN status = 'aprovado' THEN 1 ELSE 0 END) AS BIGINT) AS succeeded,
    CAST(SUM(CASE WHEN status = 'recusado' THEN 1 ELSE 0 END) AS BIGINT) AS failed,
    CAST(
        ROUND(CAST(SUM(CASE WHEN status = 'aprovado' THEN 1 ELSE 0 END) * 100.0 / COUNT(*) AS NUMERIC(38, 10)), 2)
        AS NUMERIC(5, 2)
    ) AS success_rate_pct,
    CAST(
        ROUND(CAST(SUM(CASE WHEN status = 'recusado' THEN 1 ELSE 0 END) * 100.0 / COUNT(*) AS NUMERIC(38, 10)), 2)
        AS NUMERIC(5, 2)
    ) AS failure_rate_pct,
    CAST(COALESCE(SUM(CASE WHEN status = 'aprovado' THEN valor END), 0) AS NUMERIC(18, 2)) AS amount_succeeded
FROM stg.pagamentos
GROUP BY metodo
