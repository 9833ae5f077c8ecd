/* ---
schema: mart
name: users_new_daily
group: subscriptions
materialized: materialized_view
unique_key: [signup_date]
description: New users per UTC day (accepted usuario_criado) and the running total.
owners: ["team:subscriptions"]
tags: {layer: mart, domain: subscriptions}
automation: eager
columns:
  signup_date: {description: UTC day, tests: [not_null, unique]}
  new_users: {description: Users created that day, tests: [not_null, {range: {min: 1}}]}
  total_users: {description: Users created up to and including that day, tests: [not_null, {range: {min: 1}}]}
--- */
SELECT
    signup_date,
    new_users,
    CAST(SUM(new_users) OVER (ORDER BY signup_date) AS BIGINT) AS total_users
FROM (
    SELECT CAST(created_at AS DATE) AS signup_date, CAST(COUNT(*) AS BIGINT) AS new_users
    FROM stg.usuarios
    GROUP BY CAST(created_at AS DATE)
) AS d
