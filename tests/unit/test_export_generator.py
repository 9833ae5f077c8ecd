"""The sample export generator: deterministic, realistic, exact bad-row counts, readable output."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from assets.exports.file_reader import EXPORT_COLUMNS, read_export_file
from generators.exports import (
    COUNTRIES,
    PRODUCTS,
    GeneratedFile,
    generate_export_frame,
    main,
    write_export_file,
)

COUNTRY_NAMES = {name for name, _ in COUNTRIES}
NCM_SECTOR = {p.ncm: p.sector for p in PRODUCTS}


def _canonical(text: str, decimal: str) -> Decimal:
    if decimal == ",":
        text = text.replace(".", "").replace(",", ".")
    return Decimal(text)


def test_frame_is_deterministic_per_seed() -> None:
    first, bad_first = generate_export_frame(2_000, seed=11, bad_share=0.05)
    again, bad_again = generate_export_frame(2_000, seed=11, bad_share=0.05)
    other, _ = generate_export_frame(2_000, seed=12, bad_share=0.05)
    pd.testing.assert_frame_equal(first, again)
    assert bad_first == bad_again == 100
    assert not first.equals(other)


@pytest.mark.parametrize(
    ("rows", "share", "expected"),
    [(1_000, 0.013, 13), (999, 0.5, 500), (10, 0.0, 0), (7, 1.0, 7), (0, 0.3, 0)],
)
def test_exact_number_of_bad_rows(rows: int, share: float, expected: int) -> None:
    frame, bad = generate_export_frame(rows, seed=1, bad_share=share)
    assert bad == expected == round(rows * share)
    assert len(frame) == rows


def test_frame_columns_are_strings_with_realistic_values() -> None:
    frame, bad = generate_export_frame(20_000, seed=5, years=(2020, 2022))
    assert bad == 0
    assert list(frame.columns) == list(EXPORT_COLUMNS)
    assert all(pd.api.types.is_string_dtype(frame[c]) for c in frame.columns)
    assert set(frame["pais"]) <= COUNTRY_NAMES
    assert frame["ano"].astype(int).between(2020, 2022).all()
    assert frame["mes"].astype(int).between(1, 12).all()
    assert frame["ncm"].str.fullmatch(r"\d{8}").all()
    assert (frame["setor"] == frame["ncm"].map(NCM_SECTOR)).all()  # NCM codes tied to their sector
    assert frame["valor_usd"].str.fullmatch(r"\d+\.\d{2}").all()
    assert frame["peso_kg"].str.fullmatch(r"\d+\.\d{3}").all()
    # Skewed like real Brazilian exports: China first, then the United States.
    top = Counter(frame["pais"]).most_common(2)
    assert [name for name, _ in top] == ["China", "Estados Unidos"]
    assert top[0][1] / len(frame) > 0.2
    assert len(set(frame["pais"])) >= 35


def test_values_are_correlated_with_weight_through_the_product_price() -> None:
    frame, _ = generate_export_frame(20_000, seed=9)
    usd = frame["valor_usd"].astype(float).to_numpy()
    kg = frame["peso_kg"].astype(float).to_numpy()
    price = {p.ncm: p.usd_per_kg for p in PRODUCTS}
    expected = frame["ncm"].map(price).to_numpy()
    ratio = usd / kg / expected
    assert 0.9 < float(np.median(ratio)) < 1.1
    assert np.corrcoef(np.log(usd), np.log(kg))[0, 1] > 0.5
    assert (usd < 1e13).all() and (kg < 1e12).all()


def test_brazilian_number_format() -> None:
    frame, _ = generate_export_frame(2_000, seed=2, decimal=",")
    assert frame["valor_usd"].str.fullmatch(r"\d{1,3}(\.\d{3})*,\d{2}").all()  # 1.250.000,50
    assert frame["peso_kg"].str.fullmatch(r"\d+,\d{3}").all()
    plain, _ = generate_export_frame(2_000, seed=2, decimal=".")
    assert [_canonical(v, ",") for v in frame["valor_usd"]] == [Decimal(v) for v in plain["valor_usd"]]


def test_bad_rows_mix_kinds_and_each_is_rejected_once(tmp_path: Path) -> None:
    generated = write_export_file(tmp_path / "bad.csv", 3_000, bad_share=0.1, seed=4)
    parsed = read_export_file(generated.path)
    reasons = parsed.rejects.column("reason").to_pylist()
    assert len(reasons) == generated.bad_rows == 300
    assert all("; " not in r for r in reasons)  # one defect per bad row
    kinds = {r.split(" ")[0] + " " + r.split(" ")[1] for r in reasons}
    assert kinds == {
        "valor_usd not",
        "mes out",
        "pais missing",
        "ncm not",
        "peso_kg negative:",
        "ano not",
    }


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "latin-1"])
@pytest.mark.parametrize("delimiter", [";", ","])
@pytest.mark.parametrize("decimal", [",", "."])
def test_written_csv_round_trips_through_the_reader(
    tmp_path: Path, encoding: str, delimiter: str, decimal: str
) -> None:
    path = tmp_path / "exportacao.csv"
    generated = write_export_file(
        path, 400, encoding=encoding, delimiter=delimiter, decimal=decimal, bad_share=0.05, seed=21
    )
    assert generated == GeneratedFile(path=path, rows=400, bad_rows=20, fmt="csv", seconds=generated.seconds)
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") == (encoding == "utf-8-sig")
    parsed = read_export_file(path)
    assert (parsed.encoding, parsed.delimiter, parsed.decimal_separator) == (encoding, delimiter, decimal)
    assert parsed.total_rows == 400 and parsed.rejects.num_rows == 20 and parsed.rows.num_rows == 380

    frame, _ = generate_export_frame(400, seed=21, bad_share=0.05, decimal=decimal)
    good = frame.iloc[np.array(parsed.rows.column("source_line").to_pylist()) - 2]
    rows = parsed.rows.to_pylist()
    assert [r["pais"] for r in rows] == good["pais"].tolist()
    assert [r["ncm"] for r in rows] == good["ncm"].tolist()
    assert [r["valor_usd"] for r in rows] == [_canonical(v, decimal) for v in good["valor_usd"]]
    assert [r["peso_kg"] for r in rows] == [_canonical(v, decimal) for v in good["peso_kg"]]


def test_written_xlsx_round_trips_through_the_reader(tmp_path: Path) -> None:
    path = tmp_path / "exportacao.xlsx"
    generated = write_export_file(path, 500, fmt="xlsx", bad_share=0.04, seed=8, sheet="dados")
    assert (generated.rows, generated.bad_rows, generated.fmt) == (500, 20, "xlsx")
    parsed = read_export_file(path)
    assert (parsed.file_format, parsed.sheet) == ("xlsx", "dados")
    assert parsed.total_rows == 500 and parsed.rejects.num_rows == 20
    frame, _ = generate_export_frame(500, seed=8, bad_share=0.04)
    good = frame.iloc[np.array(parsed.rows.column("source_line").to_pylist()) - 2]
    rows = parsed.rows.to_pylist()
    assert [r["ncm"] for r in rows] == good["ncm"].tolist()  # text cells keep leading zeros
    assert [r["valor_usd"] for r in rows] == [Decimal(v) for v in good["valor_usd"]]
    assert [r["peso_kg"] for r in rows] == [Decimal(v) for v in good["peso_kg"]]
    assert [r["ano"] for r in rows] == good["ano"].astype(int).tolist()


def test_crlf_line_terminator(tmp_path: Path) -> None:
    path = write_export_file(tmp_path / "w.csv", 50, line_terminator="\r\n", seed=1).path
    assert path.read_bytes().count(b"\r\n") == 51
    assert read_export_file(path).rows.num_rows == 50


def test_invalid_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_export_file(tmp_path / "x.csv", 10, fmt="json")
    with pytest.raises(ValueError):
        write_export_file(tmp_path / "x.csv", 10, delimiter=".", decimal=".")
    with pytest.raises(ValueError):
        generate_export_frame(10, bad_share=1.5)


def test_cli_writes_files_with_distinct_seeds_and_prints_a_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "landing"
    code = main(
        [
            "--rows",
            "300",
            "--format",
            "csv",
            "--out",
            str(out),
            "--files",
            "3",
            "--encoding",
            "latin-1",
            "--delimiter",
            ";",
            "--decimal",
            ",",
            "--bad-share",
            "0.01",
            "--seed",
            "42",
            "--no-progress",
        ]
    )
    assert code == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["exportacao_42_1.csv", "exportacao_43_2.csv", "exportacao_44_3.csv"]
    contents = {p.read_bytes() for p in out.iterdir()}
    assert len(contents) == 3  # distinct seeds, distinct data
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith("wrote 3 csv file(s)") and "900 rows (9 bad)" in summary
    for path in out.iterdir():
        parsed = read_export_file(path)
        assert parsed.encoding == "latin-1" and parsed.rejects.num_rows == 3


def test_cli_xlsx(tmp_path: Path) -> None:
    assert main(["--rows", "20", "--format", "xlsx", "--out", str(tmp_path), "--no-progress"]) == 0
    (path,) = tmp_path.iterdir()
    assert path.name == "exportacao_42_1.xlsx"
    assert read_export_file(path, sheet="exportacao").rows.num_rows == 20
