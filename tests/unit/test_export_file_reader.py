"""The export file reader on real files written to tmp_path: formats, encodings, rejects, failures."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from pathlib import Path

import openpyxl
import pyarrow as pa
import pytest

from assets.exports.file_reader import (
    EXPORT_COLUMNS,
    REJECT_SCHEMA,
    ROW_SCHEMA,
    ParsedExportFile,
    UnreadableFileError,
    read_export_file,
)
from generators.exports import write_export_file

HEADER = list(EXPORT_COLUMNS)

# (ano, mes, pais, setor, ncm, valor_usd, peso_kg) with exact expected values.
SAMPLE = [
    (2023, 1, "China", "Agronegócio", "12019000", Decimal("1250000.50"), Decimal("850000.125")),
    (2023, 12, "Países Baixos", "Petróleo e Gás", "27090010", Decimal("0.05"), Decimal("1.000")),
    (2019, 7, "Japão", "Mineração", "26011100", Decimal("9999999999999.99"), Decimal("999999999999.999")),
    (2024, 3, "Índia", "Têxtil", "02023000", Decimal("1234.00"), Decimal("0.001")),
]


def _number(value: Decimal, decimal: str, thousands: bool) -> str:
    text = f"{value:,f}" if thousands else f"{value:f}"
    if decimal == ",":
        text = text.replace(",", "_").replace(".", ",").replace("_", ".")
    return text


def _csv_text(rows: list[list[str]], delimiter: str = ";", header: list[str] | None = None) -> str:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\n")
    writer.writerow(header or HEADER)
    writer.writerows(rows)
    return out.getvalue()


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def _good_cells(**changes: str) -> list[str]:
    cells = dict(
        ano="2023",
        mes="5",
        pais="China",
        setor="Agronegócio",
        ncm="12019000",
        valor_usd="1.000,50",
        peso_kg="2.000,000",
    )
    cells.update(changes)
    return [cells[c] for c in EXPORT_COLUMNS]


def _read_one_bad(tmp_path: Path, **changes: str) -> tuple[ParsedExportFile, dict]:
    rows = [_good_cells(), _good_cells(**changes), _good_cells()]
    parsed = read_export_file(_write(tmp_path / "f.csv", _csv_text(rows)))
    assert parsed.total_rows == 3 and parsed.rows.num_rows + parsed.rejects.num_rows == 3
    return parsed, parsed.rejects.to_pylist()[0] if parsed.rejects.num_rows else {}


def _as_tuples(parsed: ParsedExportFile) -> list[tuple]:
    return [tuple(r[c] for c in EXPORT_COLUMNS) for r in parsed.rows.to_pylist()]


# --------------------------------------------------------------------------------------------------
# Encodings, separators, decimal conventions


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "latin-1", "cp1252"])
@pytest.mark.parametrize("delimiter", [";", ",", "\t", "|"])
@pytest.mark.parametrize("decimal", [",", "."])
def test_every_encoding_delimiter_decimal_round_trips_exact_values(
    tmp_path: Path, encoding: str, delimiter: str, decimal: str
) -> None:
    rows = [
        [str(a), str(m), p, s, n, _number(v, decimal, thousands=True), _number(k, decimal, False)]
        for a, m, p, s, n, v, k in SAMPLE
    ]
    path = _write(tmp_path / "exp.csv", _csv_text(rows, delimiter), encoding)
    parsed = read_export_file(path)

    assert parsed.rejects.num_rows == 0, parsed.rejects.to_pylist()
    assert _as_tuples(parsed) == SAMPLE
    assert parsed.rows.schema == ROW_SCHEMA and parsed.rejects.schema == REJECT_SCHEMA
    assert parsed.rows.column("source_line").to_pylist() == [2, 3, 4, 5]
    assert (parsed.file_format, parsed.delimiter, parsed.decimal_separator) == ("csv", delimiter, decimal)
    expected_encoding = {"cp1252": "latin-1"}.get(encoding, encoding)  # same bytes without 0x80-0x9F
    assert parsed.encoding == expected_encoding
    assert parsed.sheet is None and parsed.total_rows == 4


def test_cp1252_only_characters_are_detected_and_decoded(tmp_path: Path) -> None:
    rows = [_good_cells(pais="Côte d’Ivoire", setor="Alimentos – “Premium” €")]
    parsed = read_export_file(_write(tmp_path / "w.csv", _csv_text(rows), "cp1252"))
    assert parsed.encoding == "cp1252"
    assert parsed.rows.column("pais").to_pylist() == ["Côte d’Ivoire"]
    assert parsed.rows.column("setor").to_pylist() == ["Alimentos – “Premium” €"]


def test_utf8_bom_is_stripped_from_the_header(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + _csv_text([_good_cells()]).encode("utf-8"))
    parsed = read_export_file(path)
    assert parsed.encoding == "utf-8-sig" and parsed.rows.num_rows == 1


def test_utf16_with_bom_is_read(tmp_path: Path) -> None:
    path = _write(tmp_path / "u16.txt", _csv_text([_good_cells()], "\t"), "utf-16")
    parsed = read_export_file(path)
    assert (parsed.encoding, parsed.delimiter, parsed.rows.num_rows) == ("utf-16", "\t", 1)


def test_crlf_line_endings(tmp_path: Path) -> None:
    text = _csv_text([_good_cells(), _good_cells(mes="13")]).replace("\n", "\r\n")
    parsed = read_export_file(_write(tmp_path / "crlf.csv", text))
    assert parsed.rows.num_rows == 1
    assert parsed.rejects.to_pylist() == [
        {
            "source_line": 3,
            "reason": "mes out of range 1-12: 13",
            "raw_content": "2023;13;China;Agronegócio;12019000;1.000,50;2.000,000",
        }
    ]


@pytest.mark.parametrize(
    ("valor", "peso", "delimiter", "expected_decimal", "expected"),
    [
        ("1.250.000,50", "850000,125", ";", ",", ("1250000.50", "850000.125")),
        ("1,250,000.50", "850000.125", ",", ".", ("1250000.50", "850000.125")),
        ("1250000.5", "7", ";", ".", ("1250000.50", "7.000")),
        ("1250000,5", "7", ",", ",", ("1250000.50", "7.000")),
        ("1.250.000", "2.000", ";", ",", ("1250000.00", "2000.000")),
        ("1,250,000", "12", ",", ".", ("1250000.00", "12.000")),
        ("1250", "12", ";", ",", ("1250.00", "12.000")),
    ],
)
def test_decimal_separator_detected_per_file(
    tmp_path: Path, valor: str, peso: str, delimiter: str, expected_decimal: str, expected: tuple
) -> None:
    rows = [_good_cells(valor_usd=valor, peso_kg=peso)]
    parsed = read_export_file(_write(tmp_path / "d.csv", _csv_text(rows, delimiter)))
    assert parsed.decimal_separator == expected_decimal
    row = parsed.rows.to_pylist()[0]
    assert (str(row["valor_usd"]), str(row["peso_kg"])) == expected


def test_extra_decimals_round_half_away_from_zero_like_postgres(tmp_path: Path) -> None:
    rows = [
        _good_cells(valor_usd="1,255", peso_kg="0,0005"),
        _good_cells(valor_usd="2,2549", peso_kg="1,0004"),
    ]
    parsed = read_export_file(_write(tmp_path / "r.csv", _csv_text(rows)))
    got = [(r["valor_usd"], r["peso_kg"]) for r in parsed.rows.to_pylist()]
    assert got == [(Decimal("1.26"), Decimal("0.001")), (Decimal("2.25"), Decimal("1.000"))]


# --------------------------------------------------------------------------------------------------
# Headers


def test_header_aliases_accents_case_and_extra_columns(tmp_path: Path) -> None:
    header = [
        "Descrição",
        "ANO",
        "Mês",
        "País",
        "Setor",
        "Código NCM",
        "Valor FOB (US$)",
        "Peso Líquido (kg)",
    ]
    rows = [["Soja em grão", "2023", "5", "China", "Agronegócio", "1201.90.00", "10,00", "20,000"]]
    parsed = read_export_file(_write(tmp_path / "h.csv", _csv_text(rows, header=header)))
    assert _as_tuples(parsed) == [
        (2023, 5, "China", "Agronegócio", "12019000", Decimal("10.00"), Decimal("20.000"))
    ]


@pytest.mark.parametrize(
    "header",
    [
        ["year", "month", "country", "sector", "cod_ncm", "value_usd", "weight_kg"],
        ["Ano", "Mes", "Pais", "Setor", "NCM", "Valor", "Peso"],
        ["CO_ANO", "CO_MES", "NO_PAIS", "SETOR", "CO_NCM", "VL_FOB", "KG_LIQUIDO"],
        [" ano ", "mês", "país", "setor", "ncm", "us$", "kg"],
    ],
)
def test_header_alias_sets(tmp_path: Path, header: list[str]) -> None:
    parsed = read_export_file(_write(tmp_path / "h.csv", _csv_text([_good_cells()], header=header)))
    assert parsed.rows.num_rows == 1


def test_missing_columns_is_unreadable_and_names_them(tmp_path: Path) -> None:
    header = ["ano", "mes", "pais", "ncm", "valor_usd"]
    path = _write(tmp_path / "m.csv", _csv_text([["2023", "1", "China", "12019000", "1"]], header=header))
    with pytest.raises(UnreadableFileError) as caught:
        read_export_file(path)
    assert caught.value.reason.startswith("missing columns: setor, peso_kg")


# --------------------------------------------------------------------------------------------------
# Rejects: one rule at a time, with line number and raw content


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"ano": "abc"}, "ano not an integer: 'abc'"),
        ({"ano": "1985"}, "ano out of range 1990-2100: 1985"),
        ({"ano": "2101"}, "ano out of range 1990-2100: 2101"),
        ({"ano": ""}, "ano missing"),
        ({"mes": "13"}, "mes out of range 1-12: 13"),
        ({"mes": "0"}, "mes out of range 1-12: 0"),
        ({"mes": "jan"}, "mes not an integer: 'jan'"),
        ({"pais": ""}, "pais missing"),
        ({"pais": "   "}, "pais missing"),
        ({"pais": "x" * 101}, "pais longer than 100 characters: 101"),
        ({"setor": ""}, "setor missing"),
        ({"setor": "é" * 101}, "setor longer than 100 characters: 101"),
        ({"ncm": "1701"}, "ncm not 8 digits: '1701'"),
        ({"ncm": "170111000"}, "ncm not 8 digits: '170111000'"),
        ({"ncm": "1701.11.0A"}, "ncm not 8 digits: '1701.11.0A'"),
        ({"ncm": ""}, "ncm missing"),
        ({"valor_usd": "abc"}, "valor_usd not numeric: 'abc'"),
        ({"valor_usd": "1.2.3,4"}, "valor_usd not numeric: '1.2.3,4'"),
        ({"valor_usd": "-5,00"}, "valor_usd negative: -5,00"),
        ({"valor_usd": "12345678901234,00"}, "valor_usd too large for decimal(15,2): 12345678901234,00"),
        ({"valor_usd": ""}, "valor_usd missing"),
        ({"peso_kg": "-1,000"}, "peso_kg negative: -1,000"),
        ({"peso_kg": "dez"}, "peso_kg not numeric: 'dez'"),
        ({"peso_kg": "1234567890123,0"}, "peso_kg too large for decimal(15,3): 1234567890123,0"),
    ],
)
def test_each_rule_rejects_with_reason_line_and_raw_content(
    tmp_path: Path, changes: dict[str, str], reason: str
) -> None:
    parsed, reject = _read_one_bad(tmp_path, **changes)
    assert parsed.rows.num_rows == 2
    assert parsed.rows.column("source_line").to_pylist() == [2, 4]
    assert reject["reason"] == reason
    assert reject["source_line"] == 3
    expected_raw = io.StringIO()
    csv.writer(expected_raw, delimiter=";", lineterminator="").writerow(_good_cells(**changes))
    assert reject["raw_content"] == expected_raw.getvalue()


def test_all_failing_rules_are_listed_in_column_order(tmp_path: Path) -> None:
    text = "ano;mes;pais;setor;ncm;valor_usd;peso_kg\nx;13;;;1701;abc;-5,5\n"
    parsed = read_export_file(_write(tmp_path / "all.csv", text))
    assert parsed.rejects.to_pylist() == [
        {
            "source_line": 2,
            "reason": "ano not an integer: 'x'; mes out of range 1-12: 13; pais missing; setor missing; "
            "ncm not 8 digits: '1701'; valor_usd not numeric: 'abc'; peso_kg negative: -5,5",
            "raw_content": "x;13;;;1701;abc;-5,5",
        }
    ]


def test_accepted_variants_are_normalized(tmp_path: Path) -> None:
    rows = [
        _good_cells(ano=" 2023 ", mes="05", pais="  China ", ncm="1701.11.00", valor_usd=" 10,5 "),
        _good_cells(ano="2023.0", mes="7", ncm="0901-11-10", peso_kg="-0,000"),
        _good_cells(ncm="1701 14 00", valor_usd="0"),
    ]
    parsed = read_export_file(_write(tmp_path / "v.csv", _csv_text(rows)))
    assert parsed.rejects.num_rows == 0, parsed.rejects.to_pylist()
    got = parsed.rows.to_pylist()
    assert [r["ncm"] for r in got] == ["17011100", "09011110", "17011400"]
    assert got[0]["pais"] == "China" and got[0]["valor_usd"] == Decimal("10.50") and got[0]["mes"] == 5
    assert got[1]["ano"] == 2023 and got[1]["peso_kg"] == Decimal("0")
    assert parsed.rows.schema == ROW_SCHEMA


def test_ragged_lines_are_rejects_with_their_own_line_and_text(tmp_path: Path) -> None:
    text = (
        "ano;mes;pais;setor;ncm;valor_usd;peso_kg\n"
        "2023;1;China;Agronegócio;12019000;1,00;1,000\n"
        "2023;2;China\n"
        "2023;3;China;Agronegócio;12019000;1,00;1,000;extra;more\n"
        "2023;4;China;Agronegócio;12019000;1,00;1,000\n"
        "2023;13;China;Agronegócio;12019000;1,00;1,000\n"
    )
    parsed = read_export_file(_write(tmp_path / "ragged.csv", text))
    assert parsed.total_rows == 5
    assert parsed.rows.column("source_line").to_pylist() == [2, 5]
    assert parsed.rejects.to_pylist() == [
        {
            "source_line": 3,
            "reason": "wrong number of fields: expected 7, got 3",
            "raw_content": "2023;2;China",
        },
        {
            "source_line": 4,
            "reason": "wrong number of fields: expected 7, got 9",
            "raw_content": "2023;3;China;Agronegócio;12019000;1,00;1,000;extra;more",
        },
        {
            "source_line": 6,
            "reason": "mes out of range 1-12: 13",
            "raw_content": "2023;13;China;Agronegócio;12019000;1,00;1,000",
        },
    ]


def test_blank_lines_and_separator_only_rows_are_not_data_but_keep_line_numbers(tmp_path: Path) -> None:
    text = (
        "\n"
        "ano;mes;pais;setor;ncm;valor_usd;peso_kg\n"
        "2023;1;China;Agronegócio;12019000;1,00;1,000\n"
        "\n"
        ";;;;;;\n"
        "2023;13;China;Agronegócio;12019000;1,00;1,000\n"
        ";;;\n"
        "2023;2;China;Agronegócio;12019000;1,00;1,000"  # no final newline
    )
    parsed = read_export_file(_write(tmp_path / "blank.csv", text))
    assert parsed.total_rows == 3
    assert parsed.rows.column("source_line").to_pylist() == [3, 8]
    assert [(r["source_line"], r["reason"]) for r in parsed.rejects.to_pylist()] == [
        (6, "mes out of range 1-12: 13")
    ]


def test_quoted_fields_with_separators_quotes_and_line_breaks(tmp_path: Path) -> None:
    text = (
        "ano,mes,pais,setor,ncm,valor_usd,peso_kg\n"
        '2023,1,"China","Agro, ""premium""","12019000","1.250,50","2,000"\n'
        '2023,2,"Estados\nUnidos",Agronegócio,12019000,"3,00","4,000"\n'
        '2023,13,China,Agronegócio,12019000,"5,00","6,000"\n'
    )
    parsed = read_export_file(_write(tmp_path / "q.csv", text))
    rows = parsed.rows.to_pylist()
    assert [r["setor"] for r in rows] == ['Agro, "premium"', "Agronegócio"]
    assert rows[1]["pais"] == "Estados\nUnidos"
    assert [r["source_line"] for r in rows] == [2, 3]
    assert parsed.rejects.to_pylist() == [
        {
            "source_line": 5,
            "reason": "mes out of range 1-12: 13",
            "raw_content": '2023,13,China,Agronegócio,12019000,"5,00","6,000"',
        }
    ]
    assert parsed.decimal_separator == ","


def test_stray_quote_inside_a_field_uses_the_forgiving_parser(tmp_path: Path) -> None:
    text = (
        "ano;mes;pais;setor;ncm;valor_usd;peso_kg\n"
        '2023;1;China;Tubos 5" aço;73041900;1,00;1,000\n'
        "2023;2;China\n"
        "2023;0;China;Siderurgia;73041900;1,00;1,000\n"
    )
    parsed = read_export_file(_write(tmp_path / "stray.csv", text))
    assert parsed.rows.column("setor").to_pylist() == ['Tubos 5" aço']
    assert [(r["source_line"], r["reason"], r["raw_content"]) for r in parsed.rejects.to_pylist()] == [
        (3, "wrong number of fields: expected 7, got 3", "2023;2;China"),
        (4, "mes out of range 1-12: 0", "2023;0;China;Siderurgia;73041900;1,00;1,000"),
    ]


# --------------------------------------------------------------------------------------------------
# Unreadable files


def _reason(path: Path, sheet: str | None = None) -> str:
    with pytest.raises(UnreadableFileError) as caught:
        read_export_file(path, sheet=sheet)
    assert "\n" not in caught.value.reason and str(caught.value) == caught.value.reason
    return caught.value.reason


def test_empty_file_is_unreadable(tmp_path: Path) -> None:
    (tmp_path / "e.csv").write_bytes(b"")
    assert _reason(tmp_path / "e.csv") == "empty file (0 bytes)"
    (tmp_path / "e.xlsx").write_bytes(b"")
    assert _reason(tmp_path / "e.xlsx") == "empty file (0 bytes)"


def test_blank_only_file_is_unreadable(tmp_path: Path) -> None:
    assert "empty file" in _reason(_write(tmp_path / "b.csv", "\n\n  \n"))


@pytest.mark.parametrize(
    "text",
    ["ano;mes;pais;setor;ncm;valor_usd;peso_kg", "ano;mes;pais;setor;ncm;valor_usd;peso_kg\n\n;;;;;;\n"],
)
def test_header_only_is_unreadable(tmp_path: Path, text: str) -> None:
    assert _reason(_write(tmp_path / "h.csv", text)) == "no data rows (header only)"


def test_undecodable_content_is_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(b"\xef\xbb\xbf" + _csv_text([_good_cells()]).encode("utf-8") + b"\xff\xfe\xfa")
    assert _reason(path).startswith("not decodable")
    path.write_bytes(b"\x00\x01\x02binary\x00" * 10)
    assert _reason(path).startswith("not decodable")


def test_unsupported_extension_is_unreadable(tmp_path: Path) -> None:
    assert "unsupported file extension '.json'" in _reason(_write(tmp_path / "x.json", "{}"))


@pytest.mark.parametrize("content", [b"PK\x03\x04 this is not really a zip archive", b"ano;mes\n1;2\n"])
def test_corrupt_xlsx_is_unreadable(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "corrupt.xlsx"
    path.write_bytes(content)
    assert _reason(path).startswith("not a valid XLSX workbook")


def test_unreadable_error_is_the_one_the_landing_ingest_catches(tmp_path: Path) -> None:
    """The shared ingest code catches resources.landing_zone.UnreadableFileError; it must be this one."""
    from resources.landing_zone import UnreadableFileError as LandingUnreadable

    (tmp_path / "e.csv").write_bytes(b"")
    with pytest.raises(LandingUnreadable) as caught:
        read_export_file(tmp_path / "e.csv")
    assert caught.value.reason == "empty file (0 bytes)"


# --------------------------------------------------------------------------------------------------
# XLSX


def _workbook(path: Path, sheets: dict[str, list[list]]) -> Path:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    book.save(path)
    return path


def test_xlsx_happy_path_with_numbers_text_and_lost_leading_zero(tmp_path: Path) -> None:
    rows = [
        ["Ano", "Mês", "País", "Setor", "NCM", "Valor USD", "Peso KG", "Obs"],
        [2023, 1, "China", "Agronegócio", "12019000", 1250000.5, 850000.125, "x"],
        [2023, 2, " Japão ", "Alimentos Processados", 2023000, "1.250,50", "2,5", None],
        [None, None, None, None, None, None, None, None],
        [2024, 13, "Chile", "Mineração", "26011100", 10, 20, None],
        [2024, 3, "Chile", "Mineração", "0901.11.10", 99999999999.99, 0.001, None],
    ]
    parsed = read_export_file(_workbook(tmp_path / "a.xlsx", {"exportacao": rows}))
    assert (parsed.file_format, parsed.sheet, parsed.encoding, parsed.delimiter) == (
        "xlsx",
        "exportacao",
        None,
        None,
    )
    assert parsed.decimal_separator == ","  # of the text cells
    assert _as_tuples(parsed) == [
        (2023, 1, "China", "Agronegócio", "12019000", Decimal("1250000.50"), Decimal("850000.125")),
        (2023, 2, "Japão", "Alimentos Processados", "02023000", Decimal("1250.50"), Decimal("2.500")),
        (2024, 3, "Chile", "Mineração", "09011110", Decimal("99999999999.99"), Decimal("0.001")),
    ]
    assert parsed.rows.column("source_line").to_pylist() == [2, 3, 6]
    assert parsed.rejects.to_pylist() == [
        {
            "source_line": 5,
            "reason": "mes out of range 1-12: 13",
            "raw_content": "2024;13;Chile;Mineração;26011100;10;20",
        }
    ]
    assert parsed.total_rows == 4


def test_xlsx_title_rows_above_the_header_keep_sheet_row_numbers(tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "dados"
    sheet["B1"] = "Exportações brasileiras 2023"
    rows = [
        list(EXPORT_COLUMNS),
        [2023, 1, "China", "Agronegócio", "12019000", 1, 2],
        [2023, 1, "", "Agronegócio", "12019000", 1, -2],
    ]
    for r, row in enumerate(rows, start=3):
        for c, value in enumerate(row, start=2):  # table starts at B3
            sheet.cell(row=r, column=c, value=value)
    book.save(tmp_path / "t.xlsx")
    parsed = read_export_file(tmp_path / "t.xlsx")
    assert parsed.rows.column("source_line").to_pylist() == [4]
    assert parsed.rejects.to_pylist() == [
        {
            "source_line": 5,
            "reason": "pais missing; peso_kg negative: -2",
            "raw_content": "2023;1;;Agronegócio;12019000;1;-2",
        }
    ]


def test_xlsx_sheet_selection_and_unknown_sheet(tmp_path: Path) -> None:
    header = list(EXPORT_COLUMNS)
    path = _workbook(
        tmp_path / "s.xlsx",
        {
            "capa": [["nada aqui"]],
            "exportacao": [header, [2023, 1, "China", "Agronegócio", "12019000", 1, 2]],
            "2024": [
                header,
                [2024, 2, "Chile", "Mineração", "26011100", 3, 4],
                [2024, 3, "Chile", "Mineração", "26011100", 5, 6],
            ],
        },
    )
    assert _reason(path).startswith("missing columns")  # first sheet by default
    assert read_export_file(path, sheet="exportacao").rows.num_rows == 1
    parsed = read_export_file(path, sheet="2024")
    assert parsed.sheet == "2024" and parsed.rows.column("mes").to_pylist() == [2, 3]
    expected = "sheet 'dados' not found; available sheets: 'capa', 'exportacao', '2024'"
    assert _reason(path, sheet="dados") == expected


def test_xlsx_header_only_and_empty_sheet(tmp_path: Path) -> None:
    path = _workbook(tmp_path / "h.xlsx", {"a": [list(EXPORT_COLUMNS)], "b": []})
    assert _reason(path) == "no data rows (header only) in sheet 'a'"
    assert _reason(path, sheet="b") == "sheet 'b' is empty"


# --------------------------------------------------------------------------------------------------
# Generated files: every row accounted for


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_generated_file_with_bad_rows_reconciles(tmp_path: Path, fmt: str) -> None:
    generated = write_export_file(tmp_path / f"g.{fmt}", 2_000, fmt=fmt, bad_share=0.03, seed=7)
    parsed = read_export_file(generated.path)
    assert parsed.total_rows == 2_000
    assert parsed.rows.num_rows + parsed.rejects.num_rows == parsed.total_rows
    assert parsed.rejects.num_rows == generated.bad_rows == 60
    lines = parsed.rows.column("source_line").to_pylist() + parsed.rejects.column("source_line").to_pylist()
    assert sorted(lines) == list(range(2, 2_002))


def test_total_rows_counts_data_rows_of_the_file(tmp_path: Path) -> None:
    rows = [_good_cells(mes=str(m)) for m in range(1, 16)]
    parsed = read_export_file(_write(tmp_path / "n.csv", _csv_text(rows)))
    assert (parsed.total_rows, parsed.rows.num_rows, parsed.rejects.num_rows) == (15, 12, 3)
    assert isinstance(parsed.rows, pa.Table) and isinstance(parsed.rejects, pa.Table)


def test_quoted_file_with_ragged_lines_and_embedded_newline(tmp_path: Path) -> None:
    text = (
        "ano,mes,pais,setor,ncm,valor_usd,peso_kg\n"
        '2023,1,"China","Agro, x",12019000,"1,00","2,000"\n'
        '2023,2,"Chi,na"\n'
        '"2023","3","Estados\nUnidos","A",12019000,"1,00","2,000",extra\n'
        '2023,13,China,A,12019000,"1,00","2,000"\n'
    )
    parsed = read_export_file(_write(tmp_path / "qr.csv", text))
    assert parsed.rows.column("source_line").to_pylist() == [2]
    assert parsed.rejects.to_pylist() == [
        {
            "source_line": 3,
            "reason": "wrong number of fields: expected 7, got 3",
            "raw_content": '2023,2,"Chi,na"',
        },
        {
            "source_line": 4,
            "reason": "wrong number of fields: expected 7, got 8",
            "raw_content": '"2023","3","Estados\nUnidos","A",12019000,"1,00","2,000",extra',
        },
        {
            "source_line": 6,
            "reason": "mes out of range 1-12: 13",
            "raw_content": '2023,13,China,A,12019000,"1,00","2,000"',
        },
    ]


@pytest.mark.parametrize(("delimiter", "decimal"), [(";", ","), (",", ","), (",", ".")])
def test_forgiving_parser_agrees_with_the_fast_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, delimiter: str, decimal: str
) -> None:
    import assets.exports.csv_scan as scan

    path = write_export_file(
        tmp_path / "g.csv", 500, delimiter=delimiter, decimal=decimal, bad_share=0.1, seed=3
    ).path
    with path.open("a", encoding="utf-8") as handle:
        handle.write("2023;1\n".replace(";", delimiter) + "\n")
    fast = read_export_file(path)
    monkeypatch.setattr(scan, "split_csv_fast", lambda *args: None)
    slow = read_export_file(path)
    assert fast.rows.equals(slow.rows) and fast.rejects.equals(slow.rejects)
    assert fast.rejects.num_rows == 51 and fast.total_rows == 501


# --------------------------------------------------------------------------------------------------
# Shortcuts taken for speed agree with the exact rules they skip


@pytest.mark.parametrize("decimal", [",", "."])
@pytest.mark.parametrize("column", ["valor_usd", "peso_kg"])
def test_plain_number_shortcut_agrees_with_the_regex_rules(decimal: str, column: str) -> None:
    """Every string of up to 6 characters over digits, both separators and signs, plus long ones."""
    import itertools

    import numpy as np

    from assets.exports import numbers, rules
    from assets.exports.arrow_text import lengths
    from assets.exports.schema import DECIMAL_SCALES

    values = [""] + ["".join(p) for size in range(1, 7) for p in itertools.product("09.,-+", repeat=size)]
    values += ["9999999999999,99", "99999999999999,99", "9.999.999.999.999,99", "99.999.999.999.999"]
    values += ["0000000000000000001", "1,234", "1.234", "1 234", "١٢", "12a", "1,2345", "1.2345"]
    text = pa.array(values, pa.string())
    length = lengths(text)
    exact_value, exact_masks = numbers.decimal_rules(column, text, length, decimal, None)
    plain, _ = numbers.plain_decimals(text, numbers.NonDigits.of(text), decimal, DECIMAL_SCALES[column])
    valid = ~np.logical_or.reduce(exact_masks)
    assert plain.any() and not (plain & ~valid).any()  # the shortcut only takes rows the rules accept
    value, found = rules.validate_decimal(column, text, length, decimal, None)
    assert value.cast(exact_value.type).equals(exact_value)
    assert [rule.mask.tolist() for rule in found] == [mask.tolist() for mask in exact_masks]


@pytest.mark.parametrize(
    "data",
    [
        b"plain ascii",
        "Agronegócio; Japão; €".encode(),
        b"\xed\xa0\x80",  # UTF-16 surrogate
        b"\xc0\xaf",  # overlong
        b"\xf4\x90\x80\x80",  # past U+10FFFF
        b"ok \xe2\x82",  # truncated at the end
        b"\xe9t\xe9",  # Latin-1
        b"\xf0\x9f\x98\x80",  # 4-byte sequence
    ],
)
def test_utf8_check_matches_python_decoding(data: bytes) -> None:
    from assets.exports.encoding import is_utf8

    try:
        data.decode("utf-8")
        expected = True
    except UnicodeDecodeError:
        expected = False
    assert is_utf8(data) is expected
