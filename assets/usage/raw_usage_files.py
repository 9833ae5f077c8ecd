"""Raw layer of usage events from landed JSON/JSONL files: one dynamic partition per file.

Uses the shared landing-file mechanism (content-addressed partitions, rows + rejects + ledger in one
transaction, archive / quarantine), so ``make demo`` shows the usage domain without MongoDB.
"""

from dagster import AssetKey, DynamicPartitionsDefinition

from assets.external_sources import landing_source_spec
from assets.landing_file_asset import build_landing_file_asset
from assets.landing_ingest import LandingTarget
from assets.usage.file_reader import read_usage_file
from assets.usage.tables import (
    FILE_EVENTS_TABLE,
    FILE_REJECTS_TABLE,
    RAW_SCHEMA,
    prepare_usage_tables,
)

USAGE_DOMAIN = "usage"
USAGE_FILE_PATTERNS = ("*.json", "*.jsonl", "*.ndjson")

usage_files_partitions = DynamicPartitionsDefinition(name="usage_files")

RAW_USAGE_EVENT_FILES = AssetKey([RAW_SCHEMA, FILE_EVENTS_TABLE])
RAW_USAGE_EVENT_FILES_REJECTS = AssetKey([RAW_SCHEMA, FILE_REJECTS_TABLE])

USAGE_OWNERS = ["team:usage"]

landing_usage = landing_source_spec(USAGE_DOMAIN, owners=USAGE_OWNERS, formats="JSON/JSONL usage-event")

USAGE_FILES_TARGET = LandingTarget(
    domain=USAGE_DOMAIN,
    rows_table=(RAW_SCHEMA, FILE_EVENTS_TABLE),
    rejects_table=(RAW_SCHEMA, FILE_REJECTS_TABLE),
)

raw_usage_event_files = build_landing_file_asset(
    name="raw_usage_event_files",
    target=USAGE_FILES_TARGET,
    reader=read_usage_file,
    partitions_def=usage_files_partitions,
    source=landing_usage,
    group_name="usage",
    owners=USAGE_OWNERS,
    kinds={"python", "json", "table"},
    rows_description="Valid usage events of each landed JSON/JSONL file, typed, with ingest audit columns",
    rejects_description="Objects of landed usage files that failed validation: line, reason, raw object.",
    before_ingest=prepare_usage_tables,
)
