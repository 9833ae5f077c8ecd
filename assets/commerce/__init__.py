"""Commerce clickstream domain: Kafka (and landed JSONL files) → raw events → staging → aggregates."""
