"""Tables for people: Excel (.xlsx) and CSV with Chinese headers, shared by `dipsim scenarios run` and the server.

Excel: one sheet per table, a bold frozen header row, an auto-filter, column widths fitted to the text; money in yuan
as numbers rounded to the fen with the format `#,##0.00` (real numbers, so Excel sums them), percents as fractions
with `0.00%`, counts `#,##0`, point values `#,##0.0000`; a missing number is an empty cell. Text is always written
as text: a hospital named "=1+1" or "@SUM(A1)" stays those characters (never a formula), characters an .xlsx
cannot hold (control characters) become U+FFFD, and a cell is cut at Excel's 32,767 characters.

CSV (`write_export_csv`): the same headers and values through `io.writers.write_csv` (UTF-8 with a BOM, formula-like
text cells prefixed with `'`), percents as numbers x 100 under a header that says （%）.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from dipsim.report import present
from dipsim.report.present import Column

XLSX_MAX_ROWS = 1_048_575  # an Excel sheet's rows under the header
XLSX_MAX_TEXT = 32_767  # characters Excel keeps in a cell
# `dipsim scenarios run` writes hospitals.xlsx when the table has at most this many rows: openpyxl writes about
# 7,000 to 10,000 rows of 10 columns a second, so the largest workbook it writes costs 10-15 s (a sweep of 30
# variants over 300 hospitals in two pools, 18,600 rows, about 2 s); hospitals.csv always has every row
SCENARIO_XLSX_ROWS = 100_000
FORMATS = {present.MONEY: "#,##0.00", present.PERCENT: "0.00%", present.PERCENT100: "0.00%",
           present.COUNT: "#,##0", present.POINTS: "#,##0.00", present.NUMBER: "#,##0.00",
           present.POINT_VALUE: "#,##0.0000"}
SHEET_TITLE_BAD = str.maketrans({c: "_" for c in "[]:*?/\\"})


def _frame(table: pa.Table | pd.DataFrame) -> pd.DataFrame:
    if isinstance(table, pd.DataFrame):
        return table
    lists = [f.name for f in table.schema if pa.types.is_list(f.type) or pa.types.is_large_list(f.type)]
    frame = table.to_pandas()
    for name in lists:  # code lists: one comma-joined cell, as write_csv writes them
        frame[name] = frame[name].map(lambda v: None if v is None else ",".join(map(str, v)))
    return frame


def _spec(name: str, table: str | None, columns: Mapping[str, Column] | None) -> Column:
    return (columns or {}).get(name) or present.column(name, table)


def _number(value) -> float | None:
    """A finite float, or None (a missing number is an empty cell)."""
    if value is None or isinstance(value, str):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def cell_value(value, kind: str):
    """What an Excel cell holds for `value` in a column of `kind` (numbers stay numbers; percents as fractions)."""
    if kind not in present.NUMERIC_KINDS:
        return _text(value)
    number = _number(value)
    if number is None:
        return None
    if kind == present.MONEY:
        return round(number, 2)
    if kind == present.PERCENT100:
        return number / 100
    if kind == present.COUNT and number.is_integer():
        return int(number)
    return number


def _text(value):
    """A text column's value: None, a number or a date kept as they are, anything else as text."""
    if value is None or isinstance(value, bool | int | float | np.integer | np.floating | pd.Timestamp):
        if isinstance(value, float | np.floating) and not math.isfinite(float(value)):
            return None
        if value is pd.NaT:
            return None
        return value.item() if isinstance(value, np.generic) else value
    return str(value)


def _safe_text(text: str) -> str:
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    text = ILLEGAL_CHARACTERS_RE.sub("\ufffd", text)
    return text if len(text) <= XLSX_MAX_TEXT else text[:XLSX_MAX_TEXT - 1] + "…"


def _width(text: str) -> int:
    """Columns a text takes in Excel: a CJK (wide) character two, others one."""
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def export_frame(table: pa.Table | pd.DataFrame, table_name: str | None = None, lang: str = "zh",
                 names: Mapping[str, str] | None = None) -> pd.DataFrame:
    """The table with coded values for people (hospital_type other -> 其他医院) and the runs by their names
    (`names`: `present.run_names`); columns and numbers unchanged."""
    frame = _frame(table).copy()
    for name in frame.columns:
        if name == "scenario" and names:
            frame[name] = frame[name].map(lambda s: names.get(s, s))
        if name in present.VALUES:
            frame[name] = frame[name].map(lambda v, n=name: present.value_label(n, v, lang))
    return frame


def write_workbook(path: str | Path, sheets: Iterable[tuple[str, str | None, pa.Table | pd.DataFrame]],
                   lang: str = "zh", names: Mapping[str, str] | None = None,
                   columns: Mapping[str, Column] | None = None) -> Path:
    """Write an .xlsx of one sheet per (sheet title, table name, table); `table name` picks the column labels and
    kinds (`present.COLUMNS`, `TABLE_COLUMNS`; `columns` adds or overrides some). Written atomically. ValueError
    for a table of more rows than a sheet holds."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    from dipsim.io.writers import atomic_path

    workbook = Workbook(write_only=True)
    used: set[str] = set()
    for title, table_name, table in sheets:
        frame = export_frame(table, table_name, lang, names)
        if len(frame) > XLSX_MAX_ROWS:
            raise ValueError(f"{title}: {len(frame):,} rows are more than an Excel sheet holds "
                             f"({XLSX_MAX_ROWS:,} under the header); write CSV instead")
        title = (title.translate(SHEET_TITLE_BAD)[:31] or "Sheet").strip("'") or "Sheet"
        while title in used:
            title = f"{title[:28]}_{len(used)}"
        used.add(title)
        sheet = workbook.create_sheet(title)
        specs = [_spec(str(c), table_name, columns) for c in frame.columns]
        heads = [s.zh if lang == "zh" else s.en for s in specs]
        sheet.freeze_panes = "A2"
        widths = [_width(h) for h in heads]
        for i, (spec, name) in enumerate(zip(specs, frame.columns)):  # widths from the first rows' text
            for value in frame[name].iloc[:500]:
                widths[i] = max(widths[i], _width(present.cell_text(value, spec.kind)))
        for i, width in enumerate(widths):
            sheet.column_dimensions[get_column_letter(i + 1)].width = min(max(width + 2, 8), 60)
        bold, fill = Font(bold=True), PatternFill("solid", fgColor="DDE4EE")
        header = []
        for text in heads:
            cell = WriteOnlyCell(sheet, value=_safe_text(str(text)))
            cell.data_type = "s"
            cell.font, cell.fill = bold, fill
            cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
            header.append(cell)
        sheet.append(header)
        styles = []  # per column: the style every cell of it gets (copied: openpyxl shares nothing between cells)
        for spec in specs:
            proto = WriteOnlyCell(sheet, value=None)
            if spec.kind in FORMATS:
                proto.number_format = FORMATS[spec.kind]
            styles.append(proto._style)
        kinds = [s.kind for s in specs]
        for row in frame.itertuples(index=False, name=None):
            cells = []
            for given, kind, style in zip(row, kinds, styles):
                value = cell_value(given, kind)
                if isinstance(value, str):
                    value = _safe_text(value)
                cell = WriteOnlyCell(sheet, value=value)
                if isinstance(value, str):
                    cell.data_type = "s"  # "=1+1", "#N/A": text, never a formula or an error value
                cell._style = copy.copy(style)
                cells.append(cell)
            sheet.append(cells)
        if heads:
            sheet.auto_filter.ref = f"A1:{get_column_letter(len(heads))}{len(frame) + 1}"
    if not used:
        workbook.create_sheet("Sheet")
    path = Path(path)
    with atomic_path(path) as tmp:
        workbook.save(tmp)
    return path


def write_xlsx(table: pa.Table | pd.DataFrame, path: str | Path, table_name: str | None = None, lang: str = "zh",
               names: Mapping[str, str] | None = None, sheet: str | None = None,
               columns: Mapping[str, Column] | None = None) -> Path:
    """One table as an .xlsx of one sheet (titled `sheet`, else the table's name for people: 各医院)."""
    title = sheet or present.TABLE_TITLES.get(lang, {}).get(table_name or "", table_name or "Sheet1")
    return write_workbook(path, [(title, table_name, table)], lang, names, columns)


def write_export_csv(table: pa.Table | pd.DataFrame, path: str | Path, table_name: str | None = None,
                     lang: str = "zh", names: Mapping[str, str] | None = None,
                     columns: Mapping[str, Column] | None = None) -> Path:
    """One table as CSV for people: the headers in `lang`, money rounded to the fen, percents x 100 under a header
    that says （%）, coded values and run names for people; through `write_csv` (UTF-8 with a BOM, formula-like text
    neutralised)."""
    from dipsim.io.writers import write_csv

    frame = export_frame(table, table_name, lang, names)
    out = {}
    for name in frame.columns:
        spec = _spec(str(name), table_name, columns)
        head = spec.zh if lang == "zh" else spec.en
        values = frame[name]
        if spec.kind in (present.PERCENT, present.PERCENT100):
            head += "（%）" if lang == "zh" else " (%)"
            scale = 100 if spec.kind == present.PERCENT else 1
            values = pd.Series([None if (n := _number(v)) is None else round(n * scale, 4) for v in values],
                               dtype="float64")
        elif spec.kind == present.COUNT and all(n is None or n.is_integer() for n in map(_number, values)):
            values = pd.Series([None if (n := _number(v)) is None else int(n) for v in values], dtype="Int64")
        elif spec.kind in present.NUMERIC_KINDS:
            digits = 2 if spec.kind == present.MONEY else None
            values = pd.Series([None if (n := _number(v)) is None else (round(n, digits) if digits else n)
                                for v in values], dtype="float64")
        else:
            values = pd.Series([None if (v := _text(x)) is None else str(v) for x in values], dtype=object)
        out[head] = values.reset_index(drop=True)
    return write_csv(pa.Table.from_pandas(pd.DataFrame(out), preserve_index=False), path)


def write_scenario_xlsx(results, path: str | Path, lang: str = "zh",
                        max_rows: int = SCENARIO_XLSX_ROWS) -> Path | None:
    """hospitals.xlsx of a scenario run (`scenarios.ScenarioResults`): every hospital x run, the runs in their order
    and by their names for people, levels in their natural order; None (nothing written) when the table has more
    than `max_rows` rows."""
    if len(results.hospitals) > max_rows:
        return None
    names = present.run_names(results.variants, lang)
    runs = list(results.summary["scenario"])
    frame = present.ordered(results.hospitals, runs, "hospitals")
    return write_xlsx(frame, path, "hospitals", lang, names)
