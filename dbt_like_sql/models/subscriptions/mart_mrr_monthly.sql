/* ---
schema: mart
name: subscriptions_mrr_monthly
group: subscriptions
materialized: materialized_view
unique_key: [month]
description: >
  Monthly recurring revenue at the end of each month (from the first to the latest subscription
  change) and its movement from the previous month, per subscriber: new (no MRR before, some now),
  expansion (more), contraction (less, still subscribed), churn (some before, none now). mrr =
  previous mrr + new + expansion - contraction - churn.
owners: ["team:subscriptions"]
tags: {layer: mart, domain: subscriptions}
automation: eager
columns:
  month: {description: First day of the month, tests: [not_null, unique]}
  mrr: {description: Sum of active subscriptions' monthly prices at the end of the month, tests: [not_null, {range: {min: 0}}]}
  active_subscriptions: {description: Subscribers with MRR at the end of the month, tests: [not_null, {range: {min: 0}}]}
  new_mrr: {description: MRR of subscribers who had none the month before, tests: [not_null, {range: {min: 0}}]}
  expansion_mrr: {description: Increases of subscribers paying more, tests: [not_null, {range: {min: 0}}]}
  contraction_mrr: {description: Decreases of subscribers paying less, tests: [not_null, {range: {min: 0}}]}
  churned_mrr: {description: MRR of subscribers who had some and now have none, tests: [not_null, {range: {min: 0}}]}
  net_new_mrr: {description: "mrr minus the previous month's mrr"}
--- */
WITH bounds AS (
    SELECT
        CAST(DATE_TRUNC('month', MIN(valid_from)) AS DATE) AS first_month,
        CAST(DATE_TRUNC('month', MAX(valid_from)) AS DATE) AS last_month
    FROM stg.assinaturas_historico
),
months AS (
    SELECT CAST(g.m AS DATE) AS month_start, CAST(g.m + INTERVAL '1 month' AS TIMESTAMP) AS month_end
    FROM bounds
    CROSS JOIN generate_series(bounds.first_month, bounds.last_month, INTERVAL '1 month') AS g(m)
),
subscribers AS (
    SELECT DISTINCT user_id FROM stg.assinaturas_historico
),
user_months AS (
    SELECT
        m.month_start,
        s.user_id,
        COALESCE(SUM(h.valor_mensal), 0) AS mrr
    FROM months AS m
    CROSS JOIN subscribers AS s
    LEFT JOIN stg.assinaturas_historico AS h
        ON h.user_id = s.user_id
        AND h.status = 'ativa'
        AND h.valid_from < m.month_end
        AND (h.valid_to IS NULL OR h.valid_to >= m.month_end)
    GROUP BY m.month_start, s.user_id
),
moves AS (
    SELECT
        month_start,
        user_id,
        mrr,
        COALESCE(LAG(mrr) OVER (PARTITION BY user_id ORDER BY month_start), 0) AS previous
    FROM user_months
)
SELECT
    month_start AS month,
    CAST(SUM(mrr) AS NUMERIC(18, 2)) AS mrr,
    CAST(SUM(CASE WHEN mrr > 0 THEN 1 ELSE 0 END) AS BIGINT) AS active_subscriptions,
    CAST(SUM(CASE WHEN previous = 0 AND mrr > 0 THEN mrr ELSE 0 END) AS NUMERIC(18, 2)) AS new_mrr,
    CAST(SUM(CASE WHEN previous > 0 AND mrr > previous THEN mrr - previous ELSE 0 END) AS NUMERIC(18, 2))
        AS expansion_mrr,
    CAST(SUM(CASE WHEN mrr > 0 AND mrr < previous THEN previous - mrr ELSE 0 END) AS NUMERIC(18, 2))
        AS contraction_mrr,
    CAST(SUM(CASE WHEN previous > 0 AND mrr = 0 THEN previous ELSE 0 END) AS NUMERIC(18, 2)) AS churned_mrr,
    CAST(SUM(mrr - previous) AS NUMERIC(18, 2)) AS net_new_mrr
FROM moves
GROUP BY month_start
