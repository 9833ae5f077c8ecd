"""``KafkaTopicSource``: one Kafka topic read exactly once into a raw table, declared in YAML.

A ``defs.yaml`` instance names the topic, the domain's message decoder (``module:function``), the
raw table and its message columns, the dead-letter table and, optionally, the settings that tune
it. The component builds the ingest asset (raw rows + dead letters + reconciliation check), the
offsets sensor that plans ranges from the warehouse ledger, and two jobs: ``<prefix>_kafka_ingest``
and ``<prefix>_kafka_ingest_and_refresh`` (the ingest plus everything downstream of the raw table,
without data tests), used for the one run that catches up with the topic.

Tunables are a literal (``max_events_per_run: 5000``) or a registered setting read when it is
needed (``max_events_per_run: {setting: COMMERCE_KAFKA_MAX_EVENTS_PER_RUN}``): at tick time for the
sensor, at run time for the ingest, so changing the environment of the daemon takes effect without
a code change.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from dagster import (
    AssetKey,
    AssetSelection,
    AssetSpec,
    DefaultSensorStatus,
    Definitions,
    define_asset_job,
    in_process_executor,
)
from dagster.components import Component, ComponentLoadContext, Model, Resolvable
from pydantic import Field, model_validator

from assets.sources.declarations import callable_rule, component_from_defs_yaml
from assets.sources.kafka_topic._asset import IngestAssetSpec, build_ingest_asset, kafka_run_config
from assets.sources.kafka_topic._ingest import DEFAULT_MAX_MESSAGE_BYTES, Decoder
from assets.sources.kafka_topic._sensor import build_kafka_offsets_sensor
from assets.sources.kafka_topic._tables import TopicTables, ensure_tables
from resources.settings import SETTINGS, setting_as
from resources.warehouse import WarehouseResource

_REGISTERED = {item.name for item in SETTINGS}


class FromSetting(Resolvable, Model):
    """A value read from a registered setting (``resources/settings.py``) each time it is needed."""

    setting: str = Field(description="Name of a setting registered in resources/settings.py")


def _qualified(name: str) -> tuple[str, str]:
    schema, dot, table = name.partition(".")
    if not dot or not schema or not table or "." in table:
        raise ValueError(f"table {name!r} must be written schema.table")
    return schema, table


def _int(value: int | FromSetting) -> Callable[[], int]:
    return (lambda: value) if isinstance(value, int) else (lambda: setting_as(value.setting, int))


def _bool(value: bool | FromSetting) -> Callable[[], bool]:
    return (lambda: value) if isinstance(value, bool) else (lambda: setting_as(value.setting, bool))


class KafkaTopicSource(Component, Resolvable, Model):
    """A Kafka topic ingested exactly once (offset ledger in the warehouse) into a raw table."""

    name: str = Field(description="Pipeline name: the key of this source's rows in the offsets ledger")
    job_prefix: str | None = Field(
        default=None, description="Prefix of the job and sensor names (default: name)"
    )
    domain: str = Field(description="Domain: asset group and the domain tag of assets, ops and jobs")
    owners: list[str] = Field(default_factory=list, description="Owners of the raw assets")
    topic: str | FromSetting = Field(description="Topic name, or the setting holding it")
    decoder: str = Field(
        description=(
            "module:function decoding a batch: (values, max_message_bytes) -> object with events "
            "(Arrow table of the message columns), rows, dead_rows, dead_reasons"
        )
    )
    raw_table: str = Field(description="schema.table of the valid rows")
    raw_description: str = Field(default="", description="Description of the raw asset")
    columns: dict[str, str] = Field(
        description="Message columns of the raw table in order: name -> SQL type (portable types)"
    )
    id_column: str | None = Field(
        default=None, description="Column staging de-duplicates by (hash index on PostgreSQL)"
    )
    dead_letter_table: str = Field(description="schema.table of the rejected messages")
    dead_letter_description: str = Field(default="", description="Description of the dead-letter asset")
    offsets_table: str = Field(default="raw.kafka_offsets", description="Offsets ledger (shared, by name)")
    batches_table: str = Field(default="raw.kafka_ingest_batches", description="Per-run batch audit")
    deps: list[str] = Field(default_factory=list, description="Upstream asset keys (a/b), e.g. the source")
    max_events_per_run: int | FromSetting = Field(default=200_000, description="Offsets per ingest run")
    max_runs_per_tick: int | FromSetting = Field(default=4, description="Runs one sensor tick requests")
    in_flight_timeout_seconds: int | FromSetting = Field(
        default=900, description="A run unfinished after this long no longer blocks its ranges"
    )
    sensor_interval_seconds: int | FromSetting = Field(
        default=30, description="Minimum seconds between sensor ticks (read when the code loads)"
    )
    refresh_when_caught_up: bool | FromSetting = Field(
        default=False, description="The run catching up with the topic also rebuilds everything downstream"
    )
    max_message_bytes: int | FromSetting = Field(
        default=DEFAULT_MAX_MESSAGE_BYTES, description="Larger messages are dead-lettered"
    )

    @classmethod
    def from_defs_yaml(cls, path: Path) -> KafkaTopicSource:
        """The instance a ``defs.yaml`` declares (for domain code sharing its tables, and tests)."""
        return component_from_defs_yaml(cls, path)

    @model_validator(mode="after")
    def _settings_registered(self) -> KafkaTopicSource:
        for field_name in type(self).model_fields:
            value = getattr(self, field_name)
            if isinstance(value, FromSetting) and value.setting not in _REGISTERED:
                raise ValueError(
                    f"{field_name}: {value.setting!r} is not a registered setting (resources/settings.py)"
                )
        return self

    # -- derived names ---------------------------------------------------------------------------

    @property
    def tables(self) -> TopicTables:
        return TopicTables(
            pipeline=self.name,
            raw=_qualified(self.raw_table),
            dead_letter=_qualified(self.dead_letter_table),
            message_columns=tuple(self.columns.items()),
            id_column=self.id_column,
            offsets=_qualified(self.offsets_table),
            batches=_qualified(self.batches_table),
        )

    @property
    def raw_key(self) -> AssetKey:
        return AssetKey(list(_qualified(self.raw_table)))

    @property
    def dead_letter_key(self) -> AssetKey:
        return AssetKey(list(_qualified(self.dead_letter_table)))

    @property
    def op_name(self) -> str:
        return "_".join(self.raw_key.path)

    @property
    def ingest_job_name(self) -> str:
        return f"{self.job_prefix or self.name}_kafka_ingest"

    @property
    def refresh_job_name(self) -> str:
        return f"{self.job_prefix or self.name}_kafka_ingest_and_refresh"

    @property
    def sensor_name(self) -> str:
        return f"{self.job_prefix or self.name}_kafka_offsets_sensor"

    def read_topic(self) -> str:
        """The topic now (a setting is read from the environment at each call)."""
        return self.topic if isinstance(self.topic, str) else setting_as(self.topic.setting, str)

    def load_decoder(self) -> Decoder:
        decoder = callable_rule(self.decoder, "decoder")
        if not callable(decoder):
            raise TypeError(f"decoder {self.decoder!r} is not callable")
        return decoder

    def ensure_tables(self, warehouse: WarehouseResource) -> None:
        """Create this source's tables and apply their upgrade steps (other writers of the raw table)."""
        ensure_tables(warehouse, self.tables)

    # -- definitions -----------------------------------------------------------------------------

    def _asset_spec(self, key: AssetKey, table: str, description: str) -> AssetSpec:
        return AssetSpec(
            key,
            description=description or None,
            metadata={"dagster/table_name": table},
            group_name=self.domain,
            owners=self.owners,
            kinds={"python", "kafka", "table"},
            tags={"layer": "raw", "domain": self.domain},
            deps=[AssetKey.from_user_string(dep) for dep in self.deps],
        )

    def build_defs(self, context: ComponentLoadContext) -> Definitions:
        self.tables  # noqa: B018 -- validates the table names when the code location loads
        ingest = build_ingest_asset(
            IngestAssetSpec(
                op_name=self.op_name,
                tables=self.tables,
                decoder=self.load_decoder,
                topic=self.read_topic,
                max_events_per_run=_int(self.max_events_per_run),
                max_message_bytes=_int(self.max_message_bytes),
                raw_spec=self._asset_spec(self.raw_key, self.raw_table, self.raw_description),
                dead_letter_spec=self._asset_spec(
                    self.dead_letter_key, self.dead_letter_table, self.dead_letter_description
                ),
                op_tags={"afluente/domain": self.domain},
            )
        )
        raw_assets = AssetSelection.assets(self.raw_key, self.dead_letter_key)
        # One op per run and no step subprocess: the in-process executor saves a Python start-up
        # per batch (the run worker process itself is the only one launched).
        ingest_job = define_asset_job(
            self.ingest_job_name,
            selection=raw_assets,
            executor_def=in_process_executor,
            description=f"Consume the Kafka offset ranges given in the run config into {self.raw_table}.",
            tags={"domain": self.domain},
        )
        # The run that catches up with the topic also rebuilds everything downstream in the same
        # process: one run launch per streaming cycle instead of an ingest run followed by an
        # automation run. Data tests are left out (three event-log writes each and their queries
        # would be most of a small batch's run time); the domain runs them on a cadence.
        refresh_job = define_asset_job(
            self.refresh_job_name,
            selection=raw_assets
            | AssetSelection.assets(self.raw_key).downstream(include_self=False).without_checks(),
            executor_def=in_process_executor,
            description=(
                f"Consume the Kafka offset ranges given in the run config into {self.raw_table}, then "
                "rebuild the models downstream of it (without their data tests)."
            ),
            tags={"domain": self.domain},
        )
        op_name = self.op_name
        sensor = build_kafka_offsets_sensor(
            name=self.sensor_name,
            job=ingest_job,
            tables=self.tables,
            topic=self.read_topic,
            run_config=lambda topic, ranges: kafka_run_config(op_name, topic, ranges),
            max_events_per_run=_int(self.max_events_per_run),
            max_runs_per_tick=_int(self.max_runs_per_tick),
            in_flight_timeout_s=lambda: float(_int(self.in_flight_timeout_seconds)()),
            minimum_interval_seconds=_int(self.sensor_interval_seconds)(),
            description=(
                f"Requests runs of {self.ingest_job_name} for the offset ranges of the topic that the "
                f"warehouse ledger ({self.offsets_table}) does not cover yet; the run that catches up "
                f"with the topic is a {self.refresh_job_name} run when refresh_when_caught_up is on."
            ),
            default_status=DefaultSensorStatus.RUNNING,
            catch_up_job=refresh_job,
            use_catch_up_job=_bool(self.refresh_when_caught_up),
        )
        return Definitions(assets=[ingest], jobs=[ingest_job, refresh_job], sensors=[sensor])
