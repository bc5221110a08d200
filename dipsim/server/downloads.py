"""Downloads of `dipsim serve`: every table of the pages (a run's hospital table, the rows of GET
/api/runs/{run}/hospitals scoped as that route scopes them; the other tables of `views.COLUMNS`) as Excel and CSV
through `report.export`: Chinese headers, money in yuan as numbers to the fen (`#,##0.00` in Excel), the change in
%, hospital levels in their natural order, text never a formula."""

from __future__ import annotations

import tempfile
from decimal import Decimal
from pathlib import Path

import pandas as pd

from dipsim.report import present
from dipsim.report.present import Column

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MEDIA = {"xlsx": XLSX_TYPE, "csv": "text/csv; charset=utf-8"}  # a download's media type by its extension

# the route's columns that are not scenario-output columns of `present.COLUMNS` (or mean something else here)
COLUMNS: dict[str, Column] = {
    "baseline_points": Column("基准点数", "baseline points", present.POINTS),
    "points": Column("方案点数", "variant points", present.POINTS),
    "baseline_payout": Column("基准基金支付（元）", "baseline fund payout (yuan)", present.MONEY),
    "payout": Column("方案基金支付（元）", "variant fund payout (yuan)", present.MONEY),
    "change": Column("变化（元）", "change (yuan)", present.MONEY),
    "change_pct": Column("变化率", "change (%)", present.PERCENT100),
}
ORDER = ["hospital_id", "name", "pool", "level", "type", "baseline_points", "points", "baseline_payout", "payout",
         "change", "change_pct"]
MONEY = ("baseline_payout", "payout", "change")


def hospitals_frame(rows: list[dict]) -> pd.DataFrame:
    """The route's rows as a table: money from its exact yuan strings to numbers (a whole number of fen / 100 is
    the float nearest that amount, so Excel shows and sums it to the fen), levels in their natural order."""
    frame = pd.DataFrame(rows, columns=ORDER)
    for name in MONEY:
        frame[name] = [float(Decimal(v)) for v in frame[name]]
    return present.ordered(frame, table="hospitals").reset_index(drop=True)


def export_bytes(table, extension: str, table_name: str, lang: str = "zh", columns=None, names=None,
                 sheet: str | None = None) -> bytes:
    """A table (Arrow or pandas) as the bytes of an .xlsx or a CSV file through `report.export` (the writers take a
    path: a temporary folder holds the file while it is read back)."""
    from dipsim.report.export import write_export_csv, write_xlsx

    with tempfile.TemporaryDirectory(prefix="dipsim-download-") as tmp:
        path = Path(tmp) / f"table.{extension}"
        if extension == "xlsx":
            write_xlsx(table, path, table_name, lang, names, sheet=sheet, columns=columns)
        else:
            write_export_csv(table, path, table_name, lang, names, columns=columns)
        return path.read_bytes()


def hospitals_xlsx(rows: list[dict], lang: str = "zh") -> bytes:
    return export_bytes(hospitals_frame(rows), "xlsx", "hospitals", lang, COLUMNS)


def hospitals_csv(rows: list[dict], lang: str = "zh") -> bytes:
    return export_bytes(hospitals_frame(rows), "csv", "hospitals", lang, COLUMNS)


def attachment(run_id: str, extension: str, table: str = "hospitals") -> dict:
    """The Content-Disposition of a download: a file name of the table and the run's (or region's) id, both
    checked against their patterns by the route (no quote, no path)."""
    return {"Content-Disposition": f'attachment; filename="{table}_{run_id}.{extension}"'}


def table_frame(rows: list[dict], columns: list[tuple[str, Column]]) -> pd.DataFrame:
    """Rows of a page's table as a frame of `columns` (in their order): money from its exact yuan strings to
    numbers (a whole number of fen / 100 is the float nearest that amount: Excel shows and sums it to the fen)."""
    frame = pd.DataFrame([{k: r.get(k) for k, _ in columns} for r in rows], columns=[k for k, _ in columns],
                         dtype=object)
    for key, spec in columns:
        if spec.kind == present.MONEY:
            frame[key] = [None if v is None else float(Decimal(v)) for v in frame[key]]
    return frame


def table_bytes(rows: list[dict], columns: list[tuple[str, Column]], title: str, extension: str,
                lang: str = "zh") -> bytes:
    """A page's table as .xlsx (one sheet titled `title`) or CSV (UTF-8 with a BOM), headers in `lang`."""
    names = {present.BASELINE: "基准方案" if lang == "zh" else "baseline"}  # the summary's baseline row
    return export_bytes(table_frame(rows, columns), extension, title, lang, dict(columns), names, sheet=title[:31])
