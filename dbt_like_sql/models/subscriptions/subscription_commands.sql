/* ---
schema: stg
name: subscription_commands
group: subscriptions
materialized: table
description: >
  Every command once (one row per correlation_id: a command delivered twice, by a producer retry or
  an API retry on another worker, keeps its first copy) with the business rules applied. Each user's
  commands are applied in the order they happened (occurred_at, stamped by the API; Kafka order
  breaks ties: one user's commands share a partition). Rules: a user exists from its first
  usuario_criado (a second one is rejected); any other command before that is rejected
  (unknown_user); a subscription is created when none is active, changed or cancelled when one is;
  a payment needs an active subscription (no_subscription, subscription_cancelled); a payment whose
  idempotency key (per user) was already recorded counts once (processed, duplicate_of the first).
owners: ["team:subscriptions"]
tags: {layer: stg, domain: subscriptions}
indexes: [[correlation_id], [user_id, seq], [event_type]]
automation: eager
columns:
  correlation_id: {description: The command's id (= event_id from the API), tests: [not_null, unique]}
  event_type:
    description: What the command does
    tests:
      - not_null
      - accepted_values:
          values: [usuario_criado, assinatura_criada, assinatura_alterada, assinatura_cancelada,
                   pagamento_registrado, config_atualizada]
  user_id: {description: User the command is about (Kafka message key), tests: [not_null]}
  seq: {description: Position of the command among its user's commands, tests: [not_null, {range: {min: 1}}]}
  status: {description: processed or rejected, tests: [not_null, {accepted_values: [processed, rejected]}]}
  reason: {description: "Why it was rejected (or duplicate_idempotency_key for a payment counted once)"}
  assinatura_id: {description: "Subscription the command applied to (correlation_id of its creation)"}
  duplicate_of: {description: "Payment already recorded under the same idempotency key"}
--- */
WITH copies AS (
    SELECT
        r.*,
        ROW_NUMBER() OVER (
            PARTITION BY r.correlation_id
            ORDER BY r.ingest_at, r.source_partition, r.source_offset, r.source_line
        ) AS copy_rank
    FROM raw.user_events AS r
),
ordered AS (
    SELECT
        c.*,
        CAST(ROW_NUMBER() OVER (
            PARTITION BY c.user_id
            ORDER BY c.occurred_at, c.source_partition, c.source_offset, c.source_line, c.correlation_id
        ) AS BIGINT) AS seq
    FROM copies AS c
    WHERE c.copy_rank = 1
),
created AS (
    SELECT
        o.*,
        MIN(CASE WHEN o.event_type = 'usuario_criado' THEN o.seq END) OVER (PARTITION BY o.user_id)
            AS user_seq
    FROM ordered AS o
),
-- The subscription state before each command: the last create or cancel of the user (after the
-- user exists) decides it, accepted or not (a refused create leaves a subscription active, a
-- refused cancel leaves none).
state AS (
    SELECT
        c.*,
        MAX(CASE WHEN c.event_type = 'assinatura_criada' AND c.seq > c.user_seq THEN c.seq END) OVER (
            PARTITION BY c.user_id ORDER BY c.seq ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
        ) AS last_create_before,
        MAX(CASE WHEN c.event_type = 'assinatura_cancelada' AND c.seq > c.user_seq THEN c.seq END) OVER (
            PARTITION BY c.user_id ORDER BY c.seq ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
        ) AS last_cancel_before
    FROM created AS c
),
ruled AS (
    SELECT
        s.*,
        CASE
            WHEN s.event_type = 'usuario_criado' AND s.seq > s.user_seq THEN 'user_already_exists'
            WHEN s.event_type = 'usuario_criado' THEN NULL
            WHEN s.user_seq IS NULL OR s.seq < s.user_seq THEN 'unknown_user'
            WHEN s.event_type = 'config_atualizada' THEN NULL
            WHEN s.event_type = 'assinatura_criada' AND s.last_create_before IS NOT NULL
                AND s.last_create_before > COALESCE(s.last_cancel_before, 0) THEN 'subscription_already_active'
            WHEN s.event_type = 'assinatura_criada' THEN NULL
            WHEN s.last_create_before IS NULL THEN 'no_subscription'
            WHEN s.last_create_before < COALESCE(s.last_cancel_before, 0) THEN 'subscription_cancelled'
            ELSE NULL
        END AS rule_reason
    FROM state AS s
),
lifecycle AS (
    SELECT
        r.*,
        MAX(CASE WHEN r.event_type = 'assinatura_criada' AND r.rule_reason IS NULL THEN r.seq END) OVER (
            PARTITION BY r.user_id ORDER BY r.seq ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
        ) AS lifecycle_seq,
        MIN(CASE WHEN r.event_type = 'pagamento_registrado' AND r.rule_reason IS NULL THEN r.seq END) OVER (
            PARTITION BY r.user_id, r.idempotency_key
        ) AS first_recorded_seq
    FROM ruled AS r
)
SELECT
    CAST(l.correlation_id AS VARCHAR(128)) AS correlation_id,
    CAST(l.event_id AS VARCHAR(128)) AS event_id,
    CAST(l.event_type AS VARCHAR(32)) AS event_type,
    CAST(l.user_id AS VARCHAR(128)) AS user_id,
    CAST(l.occurred_at AS TIMESTAMP) AS occurred_at,
    l.seq,
    CAST(l.idempotency_key AS VARCHAR(200)) AS idempotency_key,
    CAST(l.nome AS VARCHAR(512)) AS nome,
    CAST(l.email AS VARCHAR(512)) AS email,
    CAST(l.plano AS VARCHAR(512)) AS plano,
    CAST(l.valor_mensal AS NUMERIC(12, 2)) AS valor_mensal,
    CAST(l.valor AS NUMERIC(14, 2)) AS valor,
    CAST(l.metodo AS VARCHAR(512)) AS metodo,
    CAST(l.pagamento_status AS VARCHAR(16)) AS pagamento_status,
    l.preferencias,
    CAST(
        CASE
            WHEN l.event_type = 'pagamento_registrado' AND l.idempotency_key IS NOT NULL
                AND l.seq > l.first_recorded_seq THEN 'processed'
            WHEN l.rule_reason IS NULL THEN 'processed'
            ELSE 'rejected'
        END AS VARCHAR(16)
    ) AS status,
    CAST(
        CASE
            WHEN l.event_type = 'pagamento_registrado' AND l.idempotency_key IS NOT NULL
                AND l.seq > l.first_recorded_seq THEN 'duplicate_idempotency_key'
            ELSE l.rule_reason
        END AS VARCHAR(64)
    ) AS reason,
    CAST(CASE WHEN l.rule_reason IS NULL THEN opening.correlation_id END AS VARCHAR(128)) AS assinatura_id,
    CAST(
        CASE WHEN l.idempotency_key IS NOT NULL AND l.seq > l.first_recorded_seq THEN recorded.correlation_id END
        AS VARCHAR(128)
    ) AS duplicate_of,
    CAST(l.source_key AS VARCHAR(400)) AS source_key,
    CAST(l.ingest_at AS TIMESTAMP) AS ingest_at
FROM lifecycle AS l
LEFT JOIN ordered AS opening
    ON opening.user_id = l.user_id AND opening.seq = l.lifecycle_seq
    AND l.event_type IN ('assinatura_criada', 'assinatura_alterada', 'assinatura_cancelada', 'pagamento_registrado')
LEFT JOIN ordered AS recorded
    ON recorded.user_id = l.user_id AND recorded.seq = l.first_recorded_seq
    AND l.event_type = 'pagamento_registrado'
