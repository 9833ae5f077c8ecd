/* ---
schema: stg
name: commerce_events
group: commerce
materialized: incremental
unique_key: [event_id]
# New raw rows = rows of ingest batches not staged yet. Every raw batch (a Kafka range commit, a
# landed file) shares one ingest_at, so a batch is staged when some staged row carries its
# ingest_at; the 15-minute look-back only bounds the scan (a batch committed late by a concurrent
# run is still inside it). Rows already staged with the same or a smaller source_key are skipped,
# so a copy with a smaller source_key still replaces the staged one, as a full refresh would.
incremental_predicate: >-
  ingest_at >= (SELECT COALESCE(MAX(ingest_at), TIMESTAMP '1970-01-01') FROM {{ this }})
  - INTERVAL '15 minutes'
  AND NOT EXISTS (SELECT 1 FROM {{ this }} AS batch WHERE batch.ingest_at = src.ingest_at)
  AND NOT EXISTS (
    SELECT 1 FROM {{ this }} AS staged
    WHERE staged.event_id = src.event_id AND staged.source_key <= src.source_key
  )
# Data tests look at the rows merged in the hour before the latest merge (the first build: every
# row). They run every few minutes (COMMERCE_DATA_TESTS_CRON), so each merge is tested many times
# over; a merge replaces rows by event_id, so it cannot duplicate older rows.
tests_where: "merged_at >= (SELECT MAX(merged_at) FROM {{ this }}) - INTERVAL '1 hour'"
description: >
  Clickstream events, one row per event_id (seed table `events`), from Kafka messages and landed
  JSONL files. A message delivered twice (producer retry, same event in a file and on the topic)
  keeps its first copy (smallest source_key). Amounts are NUMERIC; timestamps are UTC.
owners: ["team:commerce"]
tags: {layer: stg, domain: commerce}
indexes: [[event_id], [event_timestamp], [user_id], [session_id], [product_id, event_timestamp, event_id], [event_type, event_date], [ingest_at], [merged_at]]
automation: eager
columns:
  event_id: {description: Event UUID from the producer, tests: [not_null, unique]}
  event_type:
    description: page_view, search, add_to_cart, remove_from_cart or purchase
    tests:
      - not_null
      - accepted_values: {values: [page_view, search, add_to_cart, remove_from_cart, purchase]}
  event_timestamp: {description: When the event happened (UTC), tests: [not_null]}
  event_date: {description: UTC day of event_timestamp, tests: [not_null]}
  user_id: {description: "Shopper id (Kafka message key)", tests: [not_null]}
  session_id: {description: Browsing session id, tests: [not_null]}
  product_id: {description: "Product of page views, cart events and purchases"}
  product_price: {description: Unit price at event time, tests: [{range: {min: 0}}]}
  quantity: {description: "Units added, removed or bought", tests: [{range: {min: 1}}]}
  total_amount: {description: Amount paid (purchases only), tests: [{range: {min: 0}}]}
  source_key: {description: "kafka/<topic>/<partition>/<offset> or file/<file key>/<line>"}
  ingest_at: {description: When the raw row was loaded, tests: [not_null]}
  merged_at:
    description: >-
      When the row was merged into staging (the merge's transaction time; merges of one model never
      overlap, so it only grows). Downstream incremental models read the rows merged after their
      own high-water mark.
    tests: [not_null]
--- */
SELECT
    CAST(r.event_id AS VARCHAR(128)) AS event_id,
    CAST(r.event_type AS VARCHAR(32)) AS event_type,
    CAST(r.event_timestamp AS TIMESTAMP) AS event_timestamp,
    CAST(r.event_timestamp AS DATE) AS event_date,
    CAST(r.user_id AS VARCHAR(128)) AS user_id,
    CAST(r.session_id AS VARCHAR(128)) AS session_id,
    CAST(r.product_id AS VARCHAR(128)) AS product_id,
    CAST(r.product_name AS VARCHAR(512)) AS product_name,
    CAST(r.product_category AS VARCHAR(512)) AS product_category,
    CAST(r.product_price AS NUMERIC(12, 2)) AS product_price,
    CAST(r.quantity AS INTEGER) AS quantity,
    CAST(r.total_amount AS NUMERIC(14, 2)) AS total_amount,
    CAST(r.payment_method AS VARCHAR(128)) AS payment_method,
    CAST(r.search_query AS VARCHAR(512)) AS search_query,
    CAST(r.source_key AS VARCHAR(400)) AS source_key,
    CAST(r.source_topic AS VARCHAR(255)) AS source_topic,
    CAST(r.source_partition AS INTEGER) AS source_partition,
    CAST(r.source_offset AS BIGINT) AS source_offset,
    CAST(r.source_timestamp AS TIMESTAMP) AS source_timestamp,
    CAST(r.ingest_at AS TIMESTAMP) AS ingest_at,
    CAST(r.ingest_batch AS VARCHAR(100)) AS ingest_batch,
    CAST(NOW() AT TIME ZONE 'UTC' AS TIMESTAMP) AS merged_at
FROM raw.commerce_events AS r
WHERE
    r.event_id IS NOT NULL
    AND NOT EXISTS (
        SELECT 1
        FROM raw.commerce_events AS d
        WHERE d.event_id = r.event_id AND d.source_key < r.source_key
    )
