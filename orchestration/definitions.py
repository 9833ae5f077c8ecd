"""The code location: every domain's assets, checks, sensors and schedules plus shared resources.

Each domain contributes a partial ``Definitions`` (``orchestration/<domain>.py``); declared instances
(``assets/defs/*/defs.yaml``) add the sources and the SQL models of all domains (``assets/defs/sql_models``,
a ``dbt_like_sql.SqlProjectComponent``); resources are bound once here from the typed settings
(``orchestration/platform_resources.py``: values, and ``EnvVar`` for secrets that are set), so which
warehouse, broker or search engine is used is decided by configuration.
"""

from dagster import AssetsDefinition, Definitions, colored_console_logger

from orchestration import commerce, exports, subscriptions, usage
from orchestration.declared import declared
from orchestration.execution import DEFAULT_EXECUTOR
from orchestration.freshness import with_freshness
from orchestration.json_logs import json_logger
from orchestration.layers import with_layer_kinds
from orchestration.platform_resources import platform_resources
from orchestration.self_healing import build_self_healing_defs
from orchestration.sensors import automation_sensor

# The SQL models as the declaration builds them (the same objects the code location holds): for jobs,
# benches and tests that run models next to other assets.
sql_model_assets = [a for a in declared("sql_models").assets or () if isinstance(a, AssetsDefinition)]

resources = platform_resources()

defs = Definitions.merge(
    # Declared instances of the platform's mechanisms and the SQL project (assets/defs/*/defs.yaml).
    # Not bound to a module-level name: a code location module may hold only one Definitions object
    # (the loader of the webserver and the daemon refuses two).
    declared(),
    exports.defs,
    commerce.defs,
    usage.defs,
    subscriptions.defs,
    Definitions(
        sensors=[automation_sensor],
        resources=resources,
        executor=DEFAULT_EXECUTOR,
        # `console` stays Dagster's default; `loggers: {json: {}}` in a run config selects JSON lines.
        loggers={"console": colored_console_logger, "json": json_logger},
    ),
)
# The kind of its layer on every raw/stg/mart asset: the UI names nodes by the last part of the key only.
defs = with_layer_kinds(defs)
# Freshness policy, WARN freshness check and ops.freshness record for every mart/* and search/* asset.
defs = with_freshness(defs)
# Run-failure sensor (ops.incidents, bounded re-execution of transient failures) and its jobs.
defs = Definitions.merge(defs, build_self_healing_defs(defs))
