/* ---
schema: mart
name: subscriptions_active_by_plan
group: subscriptions
materialized: materialized_view
unique_key: [plano]
description: Active subscriptions per plan right now, with the monthly recurring revenue they bring.
owners: ["team:subscriptions"]
tags: {layer: mart, domain: subscriptions}
automation: eager
columns:
  plano: {description: Plan, tests: [not_null, unique]}
  active_subscriptions: {description: Subscriptions of the plan with status ativa, tests: [not_null, {range: {min: 1}}]}
  mrr: {description: Sum of their monthly prices, tests: [not_null, {range: {min: 0}}]}
  share_pct: {description: Share of all active subscriptions in percent, tests: [not_null, {range: {min: 0, max: 100}}]}
--- */
SELECT
    plano,
    CAST(COUNT(*) AS BIGINT) AS active_subscriptions,
    CAST(SUM(valor_mensal) AS NUMERIC(18, 2)) AS mrr,
    CAST(ROUND(CAST(COUNT(*) * 100.0 / SUM(COUNT(*)) OVER () AS NUMERIC(38, 10)), 2) AS NUMERIC(5, 2))
        AS share_pct
FROM stg.assinaturas
WHERE status = 'ativa'
GROUP BY plano
