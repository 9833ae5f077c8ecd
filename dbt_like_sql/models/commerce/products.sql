/* ---
schema: stg
name: commerce_products
group: commerce
materialized: table
description: >
  Product catalogue as seen in the clickstream (seed table `products`): the latest name, category
  and price of every product that appeared in an event, with when it was first and last seen.
owners: ["team:commerce"]
tags: {layer: stg, domain: commerce}
indexes: [[product_id], [category]]
automation: eager
columns:
  product_id: {description: Product id, tests: [not_null, unique]}
  product_name: {description: Latest name, tests: [not_null]}
  category: {description: Latest category, tests: [not_null]}
  price: {description: Latest unit price, tests: [not_null, {range: {min: 0}}]}
  first_seen_at: {description: First event mentioning the product (UTC)}
  last_seen_at: {description: Latest event mentioning the product (UTC)}
--- */
SELECT
    latest.product_id,
    latest.product_name,
    latest.category,
    latest.price,
    seen.first_seen_at,
    seen.last_seen_at
FROM (
    SELECT DISTINCT ON (product_id)
        product_id,
        product_name,
        product_category AS category,
        product_price AS price
    FROM stg.commerce_events
    WHERE product_id IS NOT NULL
    ORDER BY product_id, event_timestamp DESC, event_id DESC
) AS latest
JOIN (
    SELECT
        product_id,
        MIN(event_timestamp) AS first_seen_at,
        MAX(event_timestamp) AS last_seen_at
    FROM stg.commerce_events
    WHERE product_id IS NOT NULL
    GROUP BY product_id
) AS seen ON seen.product_id = latest.product_id
