/* ---
schema: stg
name: commerce_transactions
group: commerce
materialized: incremental
unique_key: [transaction_id]
# Purchases merged into stg.commerce_events after this table's high-water mark.
incremental_predicate: >-
  merged_at > (SELECT COALESCE(MAX(merged_at), TIMESTAMP '1970-01-01') FROM {{ this }})
description: >
  Purchases (seed table `transactions`): one row per purchase event, transaction_id = event_id,
  with the product's catalogue category. Checkout of a cart with several products emits one
  purchase per product, all in the same session.
owners: ["team:commerce"]
tags: {layer: stg, domain: commerce}
indexes: [[transaction_id], [product_id], [category], [transaction_date], [user_id], [merged_at]]
automation: eager
columns:
  transaction_id: {description: Transaction id (the purchase event id), tests: [not_null, unique]}
  event_id:
    description: Purchase event
    tests: [not_null, {relationships: {to: stg.commerce_events, field: event_id}}]
  product_id:
    description: Product bought
    tests: [not_null, {relationships: {to: stg.commerce_products, field: product_id}}]
  category: {description: Product category, tests: [not_null]}
  quantity: {description: Units bought, tests: [not_null, {range: {min: 1}}]}
  unit_price: {description: Unit price at purchase time, tests: [not_null, {range: {min: 0}}]}
  total_amount: {description: Amount paid, tests: [not_null, {range: {min: 0}}]}
  payment_method: {description: "credit_card, debit_card, paypal, pix or boleto", tests: [not_null]}
  transaction_timestamp: {description: When the purchase happened (UTC), tests: [not_null]}
--- */
SELECT
    e.event_id AS transaction_id,
    e.event_id,
    e.user_id,
    e.session_id,
    e.product_id,
    COALESCE(p.category, e.product_category) AS category,
    e.quantity,
    e.product_price AS unit_price,
    e.total_amount,
    e.payment_method,
    e.event_timestamp AS transaction_timestamp,
    e.event_date AS transaction_date,
    e.ingest_at,
    e.merged_at
FROM stg.commerce_events AS e
LEFT JOIN stg.commerce_products AS p ON p.product_id = e.product_id
WHERE e.event_type = 'purchase'
