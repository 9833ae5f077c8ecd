"""Benchmark: DuckDB's ``read_csv`` as the export reader's CSV front end, against the current one.

Issue 15 asked whether DuckDB's own CSV reader (``encoding``, ``decimal_separator``,
``store_rejects``) should replace the reader's numpy + pyarrow scan. What can be swapped while
keeping every exact value and every reject reason is the record parser
(:func:`assets.exports.csv_scan.parse_records`): DuckDB reads the records with ``store_rejects``
(rows with another field count go to ``reject_errors``); the rest is shared. ``encoding`` cannot
replace the detection (DuckDB detects no encoding and reads no cp1252), and ``decimal_separator``
applies only to typed columns, where ``1.250.000,50`` (thousands groups) is an error and the
reason texts are DuckDB's, so values are read as text and checked by the same rules. Usage::

    python -m bench.exports_csv_frontend [--rows 1000000] [--repeat 3] [--skip-tests]
    python -m bench.exports_csv_frontend --load duckdb --repeat 3   # the whole CSV load, DuckDB parser

It first runs tests/unit/test_export_file_reader.py with the DuckDB parser (the variant must pass
every exact-value and bad-input test), then times ``parse_export_bytes`` on the bench CSV file with
each parser, and checks both give the same rows and rejects.
"""

import argparse
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from assets.exports import csv_scan
from assets.exports.file_reader import ParsedExportFile, parse_export_bytes
from generators.exports import write_export_file

OUT = Path(__file__).resolve().parent / "out"
ROOT = Path(__file__).resolve().parents[1]
Parser = Callable[[pa.Buffer, list[str], list[str], str, bool], tuple[pa.Table, int] | None]


def parse_records_duckdb(
    records: pa.Buffer, column_names: list[str], wanted: list[str], delimiter: str, newlines_in_values: bool
) -> tuple[pa.Table, int] | None:
    """Same contract as :func:`csv_scan.parse_records`, parsed by DuckDB with ``store_rejects``."""
    with tempfile.NamedTemporaryFile(suffix=".csv") as handle:
        handle.write(memoryview(records))
        handle.flush()
        con = duckdb.connect()
        try:
            relation = con.read_csv(
                handle.name,
                sep=delimiter,
                header=False,
                columns={name: "VARCHAR" for name in column_names},
                auto_detect=False,
                quotechar='"',
                escapechar='"',
                encoding="utf-8",
                store_rejects=True,
            )
            table = relation.select(*wanted).to_arrow_table()
            invalid = con.execute("SELECT count(DISTINCT (file_id, line)) FROM reject_errors").fetchone()
        except duckdb.Error:
            return None
        finally:
            con.close()
    columns = [pc.cast(table.column(name), pa.string()).fill_null("") for name in wanted]
    return pa.table(columns, names=wanted), int(invalid[0] if invalid else 0)


@contextmanager
def parser(parse: Parser) -> Iterator[None]:
    original = csv_scan.parse_records
    csv_scan.parse_records = parse  # type: ignore[assignment]
    try:
        yield
    finally:
        csv_scan.parse_records = original


class _UseDuckDB:
    """pytest plugin: every test of the session reads CSV records with DuckDB."""

    @pytest.fixture(autouse=True)
    def _duckdb_parser(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(csv_scan, "parse_records", parse_records_duckdb)


def run_reader_tests() -> int:
    """pytest exit code of the export reader's tests with the DuckDB parser."""
    test_file = ROOT / "tests" / "unit" / "test_export_file_reader.py"
    return int(pytest.main(["-q", "-p", "no:cacheprovider", str(test_file)], plugins=[_UseDuckDB()]))


def _time(data: bytes, name: str) -> tuple[float, ParsedExportFile]:
    started = time.perf_counter()
    parsed = parse_export_bytes(name, data)
    return time.perf_counter() - started, parsed


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--rows", type=int, default=1_000_000)
    args.add_argument("--repeat", type=int, default=3)
    args.add_argument("--skip-tests", action="store_true")
    args.add_argument(
        "--load",
        choices=("pyarrow", "duckdb"),
        help="instead: bench.exports_load --csv-only (DuckDB warehouse) with this record parser",
    )
    options = args.parse_args()
    if options.load:
        from bench.exports_load import _print_csv_only, run_csv_only

        chosen = parse_records_duckdb if options.load == "duckdb" else csv_scan.parse_records
        with parser(chosen):
            _print_csv_only(run_csv_only(options.rows, ["duckdb"], options.repeat))
        return
    if not options.skip_tests:
        code = run_reader_tests()
        outcome = "all passed" if code == 0 else f"FAILED (pytest exit {code})"
        print(f"reader tests with the DuckDB parser: {outcome}")
    path = OUT / f"exportacao_{options.rows}.csv"
    if not path.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        write_export_file(
            path, options.rows, fmt="csv", encoding="utf-8", delimiter=";", decimal=",", seed=11
        )
    data = path.read_bytes()
    figures: dict[str, list[float]] = {"pyarrow": [], "duckdb": []}
    results: dict[str, ParsedExportFile] = {}
    for _ in range(options.repeat):  # interleaved, so both see the same machine load
        for label, parse in (("pyarrow", csv_scan.parse_records), ("duckdb", parse_records_duckdb)):
            with parser(parse):
                seconds, results[label] = _time(data, path.name)
            figures[label].append(seconds)
    same = results["pyarrow"].rows.equals(results["duckdb"].rows) and results["pyarrow"].rejects.equals(
        results["duckdb"].rejects
    )
    print(f"\nexport CSV reader, {options.rows:,} rows ({len(data) / 1e6:.0f} MB), parse_export_bytes:")
    for label, values in figures.items():
        shown = "  ".join(f"{v:.2f}" for v in values)
        print(f"  {label:<8} {shown} s   best {min(values):.2f} s ({options.rows / min(values):,.0f} rows/s)")
    print(f"  same rows and rejects: {same}")


if __name__ == "__main__":
    main()
