"""Downloads of `dipsim serve`: a run's hospital table (the rows of GET /api/runs/{run}/hospitals, scoped as that
route scopes them) as Excel and CSV through `report.export`: Chinese headers, money in yuan as numbers to the fen
(`#,##0.00` in Excel), the change in %, hospital levels in their natural order, text never a formula."""

from __future__ import annotations

import tempfile
from decimal import Decimal
from pathlib import Path

import pandas as pd

from dipsim.report import present
from dipsim.report.present import Column

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


def hospitals_xlsx(rows: list[dict], lang: str = "zh") -> bytes:
    from dipsim.report.export import write_xlsx

    with tempfile.TemporaryDirectory(prefix="dipsim-xlsx-") as tmp:
        path = write_xlsx(hospitals_frame(rows), Path(tmp) / "hospitals.xlsx", "hospitals", lang, columns=COLUMNS)
        return path.read_bytes()


def hospitals_csv(rows: list[dict], lang: str = "zh") -> bytes:
    from dipsim.report.export import write_export_csv

    with tempfile.TemporaryDirectory(prefix="dipsim-csv-") as tmp:
        path = write_export_csv(hospitals_frame(rows), Path(tmp) / "hospitals.csv", "hospitals", lang,
                                columns=COLUMNS)
        return path.read_bytes()


def attachment(run_id: str, extension: str) -> dict:
    """The Content-Disposition of a download: a file name of the run's id (checked against RUN_PATTERN)."""
    return {"Content-Disposition": f'attachment; filename="hospitals_{run_id}.{extension}"'}
