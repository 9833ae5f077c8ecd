"""The exports side of its landing-file feed (declared in assets/defs/exports/landed_files/defs.yaml).

The feed gives ``raw/exportacao`` + ``raw/exportacao_rejects`` (one partition per landed CSV/XLSX
file); this module holds the domain's reader and the keys other export assets depend on.
"""

from dagster import AssetKey

from assets.exports.file_reader import parse_export_bytes
from assets.sources.landing_feed.contract import LandedContent, ParsedFile

EXPORTS_DOMAIN = "exports"
RAW_EXPORTACAO = AssetKey(["raw", "exportacao"])
RAW_EXPORTACAO_REJECTS = AssetKey(["raw", "exportacao_rejects"])
# The file ledger the feed writes (the declaration's ledger_table), read by the file-quality mart.
LEDGER_TABLE = "raw.landing_files"


def read_export_landing_file(content: LandedContent) -> ParsedFile:
    """Adapter from the export reader to the landing-feed reader contract."""
    parsed = parse_export_bytes(content.name, content.data)
    return ParsedFile(
        rows=parsed.rows,
        rejects=parsed.rejects,
        total_rows=parsed.total_rows,
        details={
            "format": parsed.file_format,
            "encoding": parsed.encoding,
            "delimiter": parsed.delimiter,
            "decimal_separator": parsed.decimal_separator,
            "sheet": parsed.sheet,
        },
    )
