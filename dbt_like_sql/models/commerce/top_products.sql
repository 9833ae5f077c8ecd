/* ---
schema: mart
name: commerce_top_products
group: commerce
materialized: materialized_view
unique_key: [product_id]
indexes: [[sales_rank]]
description: >
  Every product that was viewed, carted or bought, with its funnel counts, units sold, revenue and
  rank by revenue (seed materialized view `top_products`; serves /api/metrics/top-products).
owners: ["team:commerce"]
tags: {layer: mart, domain: commerce}
automation: eager
columns:
  product_id: {description: Product id, tests: [not_null, unique, {relationships: {to: stg.commerce_products, field: product_id}}]}
  sales_rank: {description: "1 = highest revenue (ties broken by product_id)", tests: [not_null, unique]}
  views: {description: page_view events, tests: [not_null, {range: {min: 0}}]}
  add_to_carts: {description: add_to_cart events, tests: [not_null, {range: {min: 0}}]}
  transactions: {description: purchase events, tests: [not_null, {range: {min: 0}}]}
  units_sold: {description: Units bought, tests: [not_null, {range: {min: 0}}]}
  revenue: {description: Sum of total_amount, tests: [not_null, {range: {min: 0}}]}
  view_to_purchase_pct: {description: transactions / views in percent (NULL without views)}
--- */
SELECT
    p.product_id,
    p.product_name,
    p.category,
    p.price,
    CAST(RANK() OVER (ORDER BY f.revenue DESC, p.product_id) AS BIGINT) AS sales_rank,
    f.views,
    f.add_to_carts,
    f.transactions,
    f.units_sold,
    f.revenue,
    CAST(ROUND(CAST(f.transactions * 100.0 / NULLIF(f.views, 0) AS NUMERIC(38, 10)), 2) AS NUMERIC(10, 2))
        AS view_to_purchase_pct,
    CAST(NOW() AT TIME ZONE 'UTC' AS TIMESTAMP) AS updated_at
FROM (
    SELECT
        product_id,
        CAST(SUM(CASE WHEN event_type = 'page_view' THEN 1 ELSE 0 END) AS BIGINT) AS views,
        CAST(SUM(CASE WHEN event_type = 'add_to_cart' THEN 1 ELSE 0 END) AS BIGINT) AS add_to_carts,
        CAST(SUM(CASE WHEN event_type = 'purchase' THEN 1 ELSE 0 END) AS BIGINT) AS transactions,
        CAST(COALESCE(SUM(CASE WHEN event_type = 'purchase' THEN quantity END), 0) AS BIGINT) AS units_sold,
        CAST(COALESCE(SUM(CASE WHEN event_type = 'purchase' THEN total_amount END), 0) AS NUMERIC(18, 2))
            AS revenue
    FROM stg.commerce_events
    WHERE product_id IS NOT NULL
    GROUP BY product_id
) AS f
JOIN stg.commerce_products AS p ON p.product_id = f.product_id
