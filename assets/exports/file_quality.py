"""Per-file data quality of the export landing zone, kept as a mart table through the IO manager."""

from typing import TYPE_CHECKING, Any

from dagster import AssetKey, Output, asset

from assets.automation import after_upstream_updates
from assets.exports.raw_exportacao import EXPORTS_DOMAIN, LEDGER_TABLE, RAW_EXPORTACAO, RAW_EXPORTACAO_REJECTS
from resources.error_diagnosis import NETWORK_RETRY_POLICY, fail_fast_on_permanent_errors
from resources.warehouse import WarehouseResource

if TYPE_CHECKING:  # imported when the asset runs: loading the code location stays pandas-free
    import pandas as pd

EXPORT_FILE_QUALITY = AssetKey(["mart", "export_file_quality"])

_QUALITY_SQL = f"""
SELECT l.partition_key, l.file_name, l.status, l.rows_total, l.rows_loaded, l.rows_rejected,
       CASE WHEN l.rows_total > 0 THEN ROUND(CAST(l.rows_rejected AS NUMERIC) * 100 / l.rows_total, 2)
            ELSE 0 END AS reject_pct,
       l.reason AS quarantine_reason, l.details, l.ingest_batch, l.ingest_at
FROM {LEDGER_TABLE} AS l
WHERE l.domain = :domain
"""

_REASONS_SQL = """
SELECT ingest_file_key AS partition_key, reason, COUNT(*) AS n
FROM raw.exportacao_rejects
GROUP BY ingest_file_key, reason
"""


def _top_reasons(reasons: "pd.DataFrame", limit: int = 3) -> "pd.Series":
    """'reason (count)' of the most frequent reject reasons of each file, most frequent first."""
    import pandas as pd

    if reasons.empty:
        return pd.Series(dtype="object")
    ranked = reasons.sort_values(["partition_key", "n", "reason"], ascending=[True, False, True])
    top = ranked.groupby("partition_key").head(limit)
    return (
        top.assign(label=top["reason"] + " (" + top["n"].astype(str) + ")")
        .groupby("partition_key")["label"]
        .agg("; ".join)
    )


@asset(
    key=EXPORT_FILE_QUALITY,
    deps=[RAW_EXPORTACAO, RAW_EXPORTACAO_REJECTS],
    group_name="exports",
    owners=["team:exports"],
    kinds={"python", "pandas", "table"},
    tags={"layer": "mart"},
    metadata={"dagster/table_name": "mart.export_file_quality", "afluente/write_mode": "replace"},
    automation_condition=after_upstream_updates(),
    retry_policy=NETWORK_RETRY_POLICY,
    description="One row per landed export file: status, rows loaded/rejected, reject rate, top reasons.",
)
@fail_fast_on_permanent_errors
def export_file_quality(warehouse: WarehouseResource) -> Output[Any]:
    """Where bad input came from, at a glance: a DataFrame stored by the warehouse IO manager.

    Typed ``Output[Any]`` rather than ``pd.DataFrame`` so that loading the code location (every run
    process and the code server) does not import pandas (~1.8 s on this machine).
    """
    import pandas as pd

    files = warehouse.read_frame(_QUALITY_SQL, {"domain": EXPORTS_DOMAIN})
    reasons = (
        warehouse.read_frame(_REASONS_SQL)
        if warehouse.table_exists("raw", "exportacao_rejects")
        else pd.DataFrame(columns=["partition_key", "reason", "n"])
    )
    top = _top_reasons(reasons)
    files["top_reject_reasons"] = files["partition_key"].map(top).fillna("")
    files["reject_pct"] = files["reject_pct"].astype(float)
    return Output(files.sort_values("ingest_at", ascending=False).reset_index(drop=True))
