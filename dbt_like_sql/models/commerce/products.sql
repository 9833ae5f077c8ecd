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
-- Per product, the latest and the first event are one index probe each on
-- (product_id, event_timestamp, event_id) instead of sorting every event (a recursive "loose index
-- scan" for the product ids would be faster still on PostgreSQL but rescans the table per product
-- on DuckDB).
SELECT
    p.product_id,
    latest.product_name,
    latest.category,
    latest.price,
    seen.first_seen_at,
    latest.last_seen_at
FROM (SELECT DISTINCT product_id FROM stg.commerce_events WHERE product_id IS NOT NULL) AS p
CROSS JOIN LATERAL (
    SELECT
        e.product_name,
        e.product_category AS category,
        e.product_price AS price,
        e.event_timestamp AS last_seen_at
    FROM stg.commerce_events AS e
    WHERE e.product_id = p.product_id
    ORDER BY e.event_timestamp DESC, e.event_id DESC
    LIMIT 1
) AS latest
CROSS JOIN LATERAL (
    SELECT MIN(e.event_timestamp) AS first_seen_at
    FROM stg.commerce_events AS e
    WHERE e.product_id = p.product_id
) AS seen
