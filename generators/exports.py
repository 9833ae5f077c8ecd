"""Sample Brazilian export-statistics files (CSV / XLSX) for demos, tests and the 1M-row benchmark.

Rows look like monthly SECEX/ComexStat aggregates: a destination country (names in Portuguese, with
the skew of real Brazilian exports: China ~30 %, Estados Unidos ~11 %, ...), a sector, a real NCM
code of that sector, a USD value and a net weight in kg that are correlated through the product's
typical price per kg. Optionally a share of rows is broken on purpose (exactly
``round(rows * bad_share)`` of them, each with one defect the reader must reject) so the reject
path and the ``rows + rejects == total`` reconciliation can be exercised.

Everything is vectorized (numpy + pyarrow string kernels); only the XLSX writer needs a Python loop
per row, which is xlsxwriter's cost. Usage::

    python -m generators.exports --rows 100000 --format csv --files 3 --bad-share 0.01 --seed 42
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

__all__ = [
    "COUNTRIES",
    "EXPORT_COLUMNS",
    "PRODUCTS",
    "GeneratedFile",
    "Product",
    "generate_export_frame",
    "main",
    "write_export_file",
]

EXPORT_COLUMNS: tuple[str, ...] = ("ano", "mes", "pais", "setor", "ncm", "valor_usd", "peso_kg")

# Destination -> relative weight, roughly the 2023 share (%) of Brazilian exports.
COUNTRIES: tuple[tuple[str, float], ...] = (
    ("China", 30.7),
    ("Estados Unidos", 10.9),
    ("Argentina", 4.9),
    ("Países Baixos", 3.6),
    ("Espanha", 2.6),
    ("Singapura", 2.6),
    ("México", 2.2),
    ("Chile", 2.1),
    ("Canadá", 1.9),
    ("Japão", 1.6),
    ("Alemanha", 1.6),
    ("Índia", 1.4),
    ("Coreia do Sul", 1.2),
    ("Malásia", 1.1),
    ("Itália", 1.0),
    ("Emirados Árabes Unidos", 1.0),
    ("França", 0.9),
    ("Bélgica", 0.9),
    ("Reino Unido", 0.9),
    ("Portugal", 0.9),
    ("Colômbia", 0.9),
    ("Paraguai", 0.9),
    ("Uruguai", 0.9),
    ("Turquia", 0.8),
    ("Vietnã", 0.8),
    ("Arábia Saudita", 0.8),
    ("Peru", 0.7),
    ("Tailândia", 0.7),
    ("Indonésia", 0.7),
    ("Bangladesh", 0.6),
    ("Egito", 0.6),
    ("Argélia", 0.5),
    ("Filipinas", 0.5),
    ("Irã", 0.5),
    ("Bolívia", 0.5),
    ("Hong Kong", 0.5),
    ("Taiwan", 0.5),
    ("Paquistão", 0.4),
    ("África do Sul", 0.4),
    ("Marrocos", 0.4),
    ("Equador", 0.3),
    ("Nigéria", 0.3),
    ("Rússia", 0.3),
)


@dataclass(frozen=True)
class Product:
    """One exported product: NCM code, its sector, typical USD per kg and shipment size."""

    ncm: str
    description: str
    sector: str
    usd_per_kg: float
    median_kg: float  # median monthly kg of one (country, product) row
    weight: float  # relative frequency of rows


PRODUCTS: tuple[Product, ...] = (
    Product("12019000", "Soja, mesmo triturada", "Agronegócio", 0.50, 5.0e7, 9.0),
    Product("23040010", "Farelo de soja", "Agronegócio", 0.45, 2.0e7, 4.0),
    Product("10059010", "Milho em grão", "Agronegócio", 0.22, 3.0e7, 4.0),
    Product("09011110", "Café não torrado, em grão", "Agronegócio", 4.00, 2.0e6, 4.0),
    Product("52010020", "Algodão simplesmente debulhado", "Agronegócio", 1.80, 3.0e6, 2.0),
    Product("24012030", "Fumo em folhas, tipo Virgínia", "Agronegócio", 5.00, 5.0e5, 1.5),
    Product("17011400", "Açúcar de cana em bruto", "Alimentos Processados", 0.45, 2.0e7, 4.0),
    Product("02023000", "Carne bovina desossada, congelada", "Alimentos Processados", 4.80, 3.0e6, 4.0),
    Product(
        "02071400",
        "Pedaços e miudezas de galos/galinhas, congelados",
        "Alimentos Processados",
        2.00,
        3.0e6,
        4.0,
    ),
    Product("02032900", "Carne suína congelada", "Alimentos Processados", 2.50, 1.0e6, 2.0),
    Product("20091200", "Suco de laranja não congelado", "Alimentos Processados", 1.00, 5.0e6, 1.5),
    Product("15071000", "Óleo de soja em bruto", "Alimentos Processados", 1.00, 5.0e6, 1.5),
    Product("26011100", "Minério de ferro não aglomerado", "Mineração", 0.10, 2.0e8, 6.0),
    Product("26011200", "Minério de ferro aglomerado (pelotas)", "Mineração", 0.14, 5.0e7, 2.0),
    Product("26030090", "Minérios de cobre e seus concentrados", "Mineração", 2.20, 5.0e6, 1.5),
    Product("71081310", "Ouro em barras", "Mineração", 60000.0, 300.0, 1.5),
    Product("27090010", "Óleos brutos de petróleo", "Petróleo e Gás", 0.55, 1.0e8, 6.0),
    Product("27101922", "Fuel oil", "Petróleo e Gás", 0.45, 2.0e7, 2.0),
    Product("27111100", "Gás natural liquefeito", "Petróleo e Gás", 0.50, 1.0e7, 0.5),
    Product("72071200", "Semimanufaturados de ferro ou aço", "Siderurgia", 0.55, 2.0e7, 3.0),
    Product("72029300", "Ferronióbio", "Siderurgia", 40.0, 5.0e5, 1.0),
    Product("72085200", "Laminados planos de ferro ou aço", "Siderurgia", 0.70, 5.0e6, 1.5),
    Product("47032900", "Celulose de não coníferas, branqueada", "Celulose e Papel", 0.55, 3.0e7, 4.0),
    Product("48025610", "Papel em folhas, 40 a 150 g/m2", "Celulose e Papel", 1.00, 2.0e6, 1.0),
    Product("87032310", "Automóveis de 1.500 a 3.000 cm3", "Automotivo", 12.0, 5.0e5, 2.5),
    Product("87042190", "Veículos de carga, diesel", "Automotivo", 10.0, 3.0e5, 1.0),
    Product("87089990", "Partes e acessórios de veículos", "Automotivo", 8.00, 2.0e5, 2.5),
    Product("40111000", "Pneus novos para automóveis", "Automotivo", 4.00, 3.0e5, 1.0),
    Product("22071000", "Álcool etílico não desnaturado (etanol)", "Química", 0.70, 1.0e7, 1.5),
    Product("39011092", "Polietileno", "Química", 1.40, 2.0e6, 1.5),
    Product("28182010", "Alumina calcinada", "Química", 0.40, 2.0e7, 1.0),
    Product("84295199", "Carregadoras e pás carregadoras", "Máquinas e Equipamentos", 12.0, 1.0e5, 1.0),
    Product("84082090", "Motores diesel para veículos", "Máquinas e Equipamentos", 15.0, 1.0e5, 1.0),
    Product("84119100", "Partes de turborreatores", "Máquinas e Equipamentos", 100.0, 5.0e3, 0.5),
    Product("88024090", "Aviões de peso superior a 15.000 kg", "Aeronáutico", 1500.0, 6.0e4, 0.5),
    Product("64039990", "Calçados de couro", "Couro e Calçados", 25.0, 5.0e4, 1.0),
    Product("41079210", "Couros bovinos preparados", "Couro e Calçados", 8.00, 3.0e5, 1.0),
    Product("52092200", "Tecidos de algodão", "Têxtil", 6.00, 1.0e5, 0.8),
    Product("63022100", "Roupas de cama de algodão", "Têxtil", 8.00, 5.0e4, 0.7),
)

BAD_KINDS = (
    "valor_not_numeric",
    "mes_out_of_range",
    "pais_missing",
    "ncm_not_8_digits",
    "peso_negative",
    "ano_not_numeric",
)
_MAX_CENTS = 10**13 - 1  # decimal(15,2)
_MAX_GRAMS = 10**12 - 1  # decimal(15,3) in thousandths of a kg


@dataclass(frozen=True)
class GeneratedFile:
    """What :func:`write_export_file` wrote: the file, its data rows and how many are broken."""

    path: Path
    rows: int
    bad_rows: int
    fmt: str = "csv"
    seconds: float = 0.0


def _str(values: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(values), pa.string())


def _grouped(integers: np.ndarray, separator: str) -> pa.Array:
    """Non-negative integers as text with thousands groups ("1.250.000"), vectorized."""
    groups = [(integers // 1000**k) % 1000 for k in range(5)]  # < 10**15
    count = 1 + sum((integers >= 1000**k).astype(np.int64) for k in range(1, 5))
    null = pa.scalar(None, pa.string())
    parts = []
    for k in range(4, -1, -1):
        text = _str(groups[k])
        padded = pc.utf8_lpad(text, 3, "0")
        leading = pa.array(count == k + 1)
        inner = pa.array(count > k + 1)
        parts.append(pc.if_else(leading, text, pc.if_else(inner, padded, null)))
    return pc.binary_join_element_wise(*parts, separator, null_handling="skip")


def _decimal_text(units: np.ndarray, scale: int, decimal: str, thousands: bool) -> pa.Array:
    """Fixed-point integers (cents, grams) as decimal text in the file's convention."""
    whole, frac = np.divmod(units, 10**scale)
    whole_text = _grouped(whole, "." if decimal == "," else ",") if thousands else _str(whole)
    frac_text = pc.utf8_lpad(_str(frac), scale, "0")
    return pc.binary_join_element_wise(whole_text, frac_text, decimal)


def generate_export_frame(
    rows: int,
    seed: int = 0,
    bad_share: float = 0.0,
    years: tuple[int, int] = (2019, 2024),
    *,
    decimal: str = ".",
) -> tuple[pd.DataFrame, int]:
    """Export rows as the strings that will be written, plus the number of rows broken on purpose.

    Deterministic for a given ``(rows, seed, bad_share, years, decimal)``. ``decimal=","`` writes
    Brazilian numbers (``1.250.000,50`` for valor_usd, ``850000,125`` for peso_kg).
    """
    if rows < 0:
        raise ValueError("rows must be >= 0")
    if not 0.0 <= bad_share <= 1.0:
        raise ValueError("bad_share must be within 0..1")
    if decimal not in (",", "."):
        raise ValueError("decimal must be ',' or '.'")
    rng = np.random.default_rng(seed)
    country_p = np.array([w for _, w in COUNTRIES])
    product_p = np.array([p.weight for p in PRODUCTS])

    country = rng.choice(len(COUNTRIES), size=rows, p=country_p / country_p.sum())
    product = rng.choice(len(PRODUCTS), size=rows, p=product_p / product_p.sum())
    year = rng.integers(years[0], years[1] + 1, size=rows)
    month = rng.integers(1, 13, size=rows)
    median_kg = np.array([p.median_kg for p in PRODUCTS])[product]
    price = np.array([p.usd_per_kg for p in PRODUCTS])[product]
    kg = median_kg * rng.lognormal(0.0, 1.0, size=rows)
    usd = kg * price * rng.lognormal(0.0, 0.15, size=rows)
    grams = np.clip(np.rint(kg * 1000), 1, _MAX_GRAMS).astype(np.int64)
    cents = np.clip(np.rint(usd * 100), 1, _MAX_CENTS).astype(np.int64)

    ncm_codes = pa.array([p.ncm for p in PRODUCTS], pa.string())
    sectors = pa.array([p.sector for p in PRODUCTS], pa.string())
    country_names = pa.array([c for c, _ in COUNTRIES], pa.string())
    columns: dict[str, pa.Array] = {
        "ano": _str(year),
        "mes": _str(month),
        "pais": country_names.take(pa.array(country)),
        "setor": sectors.take(pa.array(product)),
        "ncm": ncm_codes.take(pa.array(product)),
        "valor_usd": _decimal_text(cents, 2, decimal, thousands=decimal == ","),
        "peso_kg": _decimal_text(grams, 3, decimal, thousands=False),
    }

    n_bad = min(rows, int(round(rows * bad_share)))
    if n_bad:
        _break_rows(columns, rng, n_bad)
    table = pa.table({name: pc.cast(columns[name], pa.string()) for name in EXPORT_COLUMNS})
    return table.to_pandas(), n_bad


def _break_rows(columns: dict[str, pa.Array], rng: np.random.Generator, n_bad: int) -> None:
    """Give ``n_bad`` distinct rows one defect each, the kind drawn at random (in place)."""
    rows = len(columns["ano"])
    index = np.sort(rng.choice(rows, size=n_bad, replace=False))
    kind = rng.integers(0, len(BAD_KINDS), size=n_bad)
    pick = rng.integers(0, 1 << 30, size=n_bad).tolist()
    originals = {name: columns[name].take(pa.array(index)).to_pylist() for name in ("ncm", "peso_kg")}
    changes: dict[str, dict[int, str]] = {name: {} for name in EXPORT_COLUMNS}
    for j, (row, k) in enumerate(zip(index.tolist(), kind.tolist(), strict=True)):
        name, p = BAD_KINDS[k], pick[j]
        if name == "valor_not_numeric":
            changes["valor_usd"][row] = ("abc", "n/d", "-", "#VALOR!", "US$ ?", "12x5")[p % 6]
        elif name == "mes_out_of_range":
            changes["mes"][row] = ("0", "13")[p % 2]
        elif name == "pais_missing":
            changes["pais"][row] = ("", "  ")[p % 2]
        elif name == "ncm_not_8_digits":
            code = originals["ncm"][j]
            changes["ncm"][row] = (code[:4], code[:6], code + "9")[p % 3]
        elif name == "peso_negative":
            changes["peso_kg"][row] = "-" + originals["peso_kg"][j]
        else:  # ano_not_numeric
            changes["ano"][row] = ("20x3", "N/A", "ano", "dois mil")[p % 4]
    for name, changed in changes.items():
        if changed:
            mask = np.zeros(rows, dtype=bool)
            where = np.fromiter(changed.keys(), dtype=np.int64, count=len(changed))
            mask[where] = True
            values = pa.array([changed[r] for r in sorted(changed)], columns[name].type)
            columns[name] = pc.replace_with_mask(columns[name], pa.array(mask), values)


def _quote_if_needed(column: pa.Array, delimiter: str) -> pa.Array:
    """CSV quoting only where a cell holds the delimiter, a quote or a line break."""
    pattern = "[" + "".join("\\" + c for c in sorted({delimiter, '"'})) + "\\n\\r]"
    needs = pc.match_substring_regex(column, pattern)
    if not pc.any(needs).as_py():
        return column
    quote = pa.scalar('"', column.type)
    escaped = pc.replace_substring(column, '"', '""')
    quoted = pc.binary_join_element_wise(quote, escaped, quote, pa.scalar("", column.type))
    return pc.if_else(needs, quoted, column)


def _csv_bytes(frame: pd.DataFrame, delimiter: str, line_terminator: str) -> tuple[bytes, pa.Buffer]:
    """Header bytes and the body as one Arrow buffer (no per-row Python)."""
    header = (delimiter.join(frame.columns) + line_terminator).encode("utf-8")
    cells = [_quote_if_needed(pa.array(frame[name], pa.large_string()), delimiter) for name in frame.columns]
    large = pa.large_string()
    line = pc.binary_join_element_wise(*cells, pa.scalar(delimiter, large))
    line = pc.binary_join_element_wise(line, pa.scalar(line_terminator, large), pa.scalar("", large))
    line = pc.cast(line, pa.large_string())
    if isinstance(line, pa.ChunkedArray):
        line = line.combine_chunks()
    offsets = np.frombuffer(line.buffers()[1], dtype=np.int64)[line.offset : line.offset + len(line) + 1]
    data = line.buffers()[2]
    if data is None or len(line) == 0:
        return header, pa.py_buffer(b"")
    return header, data.slice(int(offsets[0]), int(offsets[-1] - offsets[0]))


def write_export_file(
    path: Path | str,
    rows: int,
    *,
    fmt: str = "csv",
    encoding: str = "utf-8",
    delimiter: str = ";",
    decimal: str = ",",
    bad_share: float = 0.0,
    seed: int = 0,
    sheet: str = "exportacao",
    progress: bool = False,
    years: tuple[int, int] = (2019, 2024),
    line_terminator: str = "\n",
) -> GeneratedFile:
    """Write one sample export file (CSV in the given encoding/delimiter/decimal, or XLSX).

    XLSX cells hold real numbers for ano/mes/valor_usd/peso_kg (so ``decimal``, ``encoding`` and
    ``delimiter`` do not apply) and text for the rest, NCM included so leading zeros survive.
    """
    if fmt not in ("csv", "xlsx"):
        raise ValueError("fmt must be 'csv' or 'xlsx'")
    if delimiter not in (";", ",", "\t", "|"):
        raise ValueError("delimiter must be one of ; , tab |")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with tqdm(
        total=rows, disable=not progress, unit="row", unit_scale=True, desc=path.name, leave=False
    ) as bar:
        frame, bad = generate_export_frame(
            rows, seed=seed, bad_share=bad_share, years=years, decimal="." if fmt == "xlsx" else decimal
        )
        if fmt == "csv":
            header, body = _csv_bytes(frame, delimiter, line_terminator)
            bar.update(rows // 2)
            _write_csv(path, header, body, encoding)
            bar.update(rows - rows // 2)
        else:
            _write_xlsx(path, frame, sheet, bar)
    return GeneratedFile(path=path, rows=rows, bad_rows=bad, fmt=fmt, seconds=time.perf_counter() - started)


def _write_csv(path: Path, header: bytes, body: pa.Buffer, encoding: str) -> None:
    codec = encoding.lower().replace("_", "-")
    with path.open("wb") as handle:
        if codec in ("utf-8", "utf8", "utf-8-sig"):
            if codec == "utf-8-sig":
                handle.write(b"\xef\xbb\xbf")
            handle.write(header)
            handle.write(memoryview(body))
        else:
            handle.write(header.decode("utf-8").encode(encoding))
            handle.write(memoryview(body).tobytes().decode("utf-8").encode(encoding))


def _write_xlsx(path: Path, frame: pd.DataFrame, sheet: str, bar: tqdm) -> None:
    """xlsxwriter in constant_memory mode: rows are streamed to disk, memory stays flat."""
    import xlsxwriter

    numeric = {
        name: pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float)
        for name in ("ano", "mes", "valor_usd", "peso_kg")
    }
    columns = [
        (numeric["ano"].tolist(), frame["ano"].tolist()),
        (numeric["mes"].tolist(), frame["mes"].tolist()),
        (None, frame["pais"].tolist()),
        (None, frame["setor"].tolist()),
        (None, frame["ncm"].tolist()),
        (numeric["valor_usd"].tolist(), frame["valor_usd"].tolist()),
        (numeric["peso_kg"].tolist(), frame["peso_kg"].tolist()),
    ]
    workbook = xlsxwriter.Workbook(str(path), {"constant_memory": True, "strings_to_numbers": False})
    try:
        worksheet = workbook.add_worksheet(sheet)
        worksheet.write_row(0, 0, list(frame.columns))
        write_number, write_string = worksheet.write_number, worksheet.write_string
        step = 20_000
        for start in range(0, len(frame), step):
            stop = min(start + step, len(frame))
            for i in range(start, stop):
                r = i + 1
                for col, (numbers, texts) in enumerate(columns):
                    if numbers is not None:
                        value = numbers[i]
                        if value == value:  # not NaN
                            write_number(r, col, value)
                            continue
                    write_string(r, col, texts[i])
            bar.update(stop - start)
    finally:
        workbook.close()


def _parse_delimiter(value: str) -> str:
    named = {"tab": "\t", "\\t": "\t", "semicolon": ";", "comma": ",", "pipe": "|"}
    return named.get(value.lower(), value)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: write ``--files`` sample files and print a summary."""
    parser = argparse.ArgumentParser(
        prog="python -m generators.exports",
        description="Generate sample Brazilian export-statistics files (CSV or XLSX) for afluente.",
    )
    parser.add_argument("--rows", type=int, default=100_000, help="data rows per file (default 100000)")
    parser.add_argument("--format", dest="fmt", choices=("csv", "xlsx"), default="csv", help="file format")
    parser.add_argument("--out", type=Path, default=Path("data/landing/exports"), help="output folder")
    parser.add_argument("--files", type=int, default=1, help="number of files, each with its own seed")
    parser.add_argument(
        "--encoding",
        default="utf-8",
        choices=("utf-8", "utf-8-sig", "latin-1", "cp1252"),
        help="CSV text encoding (utf-8-sig writes a BOM)",
    )
    parser.add_argument(
        "--delimiter",
        default=";",
        type=_parse_delimiter,
        choices=(";", ",", "\t", "|"),
        metavar="SEP",
        help="CSV separator: ';' (default), ',', 'tab' or '|'",
    )
    parser.add_argument(
        "--decimal",
        default=",",
        choices=(",", "."),
        metavar="SEP",
        help="CSV decimal separator: ',' (default, with '.' thousands groups in valor_usd) or '.'",
    )
    parser.add_argument("--bad-share", type=float, default=0.0, help="share of rows broken on purpose")
    parser.add_argument("--seed", type=int, default=42, help="seed of the first file (next: seed+1, ...)")
    parser.add_argument("--sheet", default="exportacao", help="XLSX worksheet name")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    args = parser.parse_args(argv)

    written: list[GeneratedFile] = []
    for n in range(1, args.files + 1):
        seed = args.seed + n - 1
        path = args.out / f"exportacao_{seed}_{n}.{args.fmt}"
        result = write_export_file(
            path,
            args.rows,
            fmt=args.fmt,
            encoding=args.encoding,
            delimiter=args.delimiter,
            decimal=args.decimal,
            bad_share=args.bad_share,
            seed=seed,
            sheet=args.sheet,
            progress=not args.no_progress,
        )
        written.append(result)
        print(f"{result.path}  rows={result.rows:,}  bad={result.bad_rows:,}  {result.seconds:.1f}s")
    total_rows = sum(f.rows for f in written)
    total_bad = sum(f.bad_rows for f in written)
    total_s = sum(f.seconds for f in written)
    size = sum(f.path.stat().st_size for f in written)
    print(
        f"wrote {len(written)} {args.fmt} file(s) to {args.out}: {total_rows:,} rows "
        f"({total_bad:,} bad), {size / 1e6:.1f} MB in {total_s:.1f}s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
