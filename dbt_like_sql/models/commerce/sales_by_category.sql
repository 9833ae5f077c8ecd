/* ---
schema: mart
name: commerce_sales_by_category
group: commerce
materialized: materialized_view
unique_key: [category]
description: Sales per product category (seed materialized view `sales_by_category`; serves /api/metrics/by-category).
owners: ["team:commerce"]
tags: {layer: mart, domain: commerce}
automation: eager
columns:
  category: {description: Product category, tests: [not_null, unique]}
  transactions: {description: Purchase events, tests: [not_null, {range: {min: 1}}]}
  units_sold: {description: Units bought, tests: [not_null, {range: {min: 0}}]}
  revenue: {description: Sum of total_amount, tests: [not_null, {range: {min: 0}}]}
  avg_transaction_value: {description: revenue / transactions, tests: [{range: {min: 0}}]}
  customers: {description: Distinct buying users, tests: [not_null]}
  revenue_share_pct: {description: Share of total revenue in percent, tests: [{range: {min: 0, max: 100}}]}
  updated_at: {description: When the view was last refreshed (UTC)}
--- */
SELECT
    category,
    CAST(COUNT(*) AS BIGINT) AS transactions,
    CAST(SUM(quantity) AS BIGINT) AS units_sold,
    CAST(SUM(total_amount) AS NUMERIC(18, 2)) AS revenue,
    CAST(ROUND(CAST(SUM(total_amount) / COUNT(*) AS NUMERIC(38, 10)), 2) AS NUMERIC(18, 2))
        AS avg_transaction_value,
    CAST(COUNT(DISTINCT user_id) AS BIGINT) AS customers,
    CAST(
        ROUND(CAST(SUM(total_amount) * 100.0 / NULLIF(SUM(SUM(total_amount)) OVER (), 0) AS NUMERIC(38, 10)), 2)
        AS NUMERIC(5, 2)
    ) AS revenue_share_pct,
    CAST(NOW() AT TIME ZONE 'UTC' AS TIMESTAMP) AS updated_at
FROM stg.commerce_transactions
GROUP BY category
