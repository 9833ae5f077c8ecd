#!/bin/sh
# Runs once, when the postgres service initializes an empty data volume: next to the warehouse
# database ($POSTGRES_DB, "afluente"), create the database of Dagster's run, event-log and schedule
# storage ($DAGSTER_PG_DB, "dagster"), owned by the same role.
set -eu
: "${DAGSTER_PG_DB:=dagster}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  --set=db="$DAGSTER_PG_DB" --set=owner="$POSTGRES_USER" <<'SQL'
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'owner')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')\gexec
SQL
