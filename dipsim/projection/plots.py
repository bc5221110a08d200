"""The figures of a projection (matplotlib, Agg; Chinese labels in a CJK font, `report.fonts`, as the scenario
report's figures: `report.plots`): the point value path per pool, the fund balance path per pool, the hospitals'
fund payout summed by level, each with the Monte Carlo draws' 10-90% band when there are draws. One scenario: a
line per pool (level) in one panel. Several (lever scenarios): a panel per pool (level), a line per scenario."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.ticker import FuncFormatter, MaxNLocator

from dipsim.projection.levers import level_payouts
from dipsim.report.plots import _png, _style, _ticks
from dipsim.report.present import number, sort_levels

TEXT = {
    "zh": {"point_value": "结算点值（按年度）", "balance": "基金年末结余（按年度）",
           "payout_by_level": "各等级医院基金支付合计（按年度）", "year": "年度（0 为基年）",
           "point_value_unit": "点值（元/点）", "balance_unit": "结余（万元）",
           "payout_by_level_unit": "基金支付（万元）",
           "band": "阴影：{n} 次抽样的 10%-90% 区间"},
    "en": {"point_value": "Settlement point value by year", "balance": "Fund balance at the end of each year",
           "payout_by_level": "Fund payout to hospitals, summed by level, by year", "year": "year (0: the base year)",
           "point_value_unit": "point value (yuan / point)", "balance_unit": "balance (10k yuan)",
           "payout_by_level_unit": "fund payout (10k yuan)", "band": "shaded: the 10-90% band of {n} draws"},
}
# figure -> (what in bands.csv, the column naming a line, the measure, its divisor on the axis)
FIGURES = {"point_value": ("pool", "pool", "point_value", 1.0), "balance": ("pool", "pool", "balance", 1e4),
           "payout_by_level": ("level", "level", "fund_payout", 1e4)}


def _paths(years: pd.DataFrame, hospitals: pd.DataFrame, figure: str) -> pd.DataFrame:
    """scenario, year, the figure's key (pool / level), value: the central projection's path."""
    what, key, measure, _ = FIGURES[figure]
    frame = years if what == "pool" else level_payouts(hospitals)
    frame = frame if "scenario" in frame else frame.assign(scenario="baseline")
    out = frame[["scenario", "year", key, measure]].rename(columns={measure: "value"})
    out["value"] = pd.to_numeric(out["value"], errors="coerce")
    return out[out["value"].notna()]


def _band(bands: pd.DataFrame | None, figure: str, scenario: str, name) -> pd.DataFrame | None:
    if bands is None or not {"p10", "p90"} <= set(bands.columns):
        return None
    what, key, measure, _ = FIGURES[figure]
    rows = bands[(bands["what"] == what) & (bands[key] == name) & (bands["measure"] == measure)]
    if "scenario" in rows:
        rows = rows[rows["scenario"] == scenario]
    return rows.sort_values("year") if len(rows) else None


def path_figure(years: pd.DataFrame, hospitals: pd.DataFrame, figure: str, lang: str = "zh",
                bands: pd.DataFrame | None = None, titles: dict[str, str] | None = None) -> bytes | None:
    """One figure (a key of `FIGURES`) as PNG bytes; None when there is nothing to draw (no pool has a fund)."""
    t = TEXT[lang]
    _, key, _, scale = FIGURES[figure]
    paths = _paths(years, hospitals, figure)
    if paths.empty:
        return None
    order = years["scenario"] if "scenario" in years else paths["scenario"]  # the file's order, baseline first
    scenarios = [s for s in dict.fromkeys(order) if s in set(paths["scenario"])]
    names = sort_levels(paths[key].unique()) if key == "level" else sorted(paths[key].unique())
    titles = titles or {}
    several = len(scenarios) > 1
    panels = names if several else [None]
    columns = min(len(panels), 2)
    rows = math.ceil(len(panels) / columns)
    _style()
    fig, axes = plt.subplots(rows, columns, figsize=(7 * columns, 3.8 * rows), squeeze=False)
    for number_, panel in enumerate(panels):
        ax = axes[number_ // columns][number_ % columns]
        lines = [(s, panel) for s in scenarios] if several else [(scenarios[0], n) for n in names]
        for scenario, name in lines:
            rows_ = paths[(paths["scenario"] == scenario) & (paths[key] == name)].sort_values("year")
            label = (titles.get(scenario, scenario) if several else str(name)).replace("$", r"\$")  # no mathtext
            line = ax.plot(rows_["year"], rows_["value"] / scale, marker="o", label=label)[0]
            band = _band(bands, figure, scenario, name)
            if band is not None:
                ax.fill_between(band["year"], band["p10"] / scale, band["p90"] / scale, color=line.get_color(),
                                alpha=0.18, linewidth=0)
        heading = t[figure] + (f" — {panel}".replace("$", r"\$") if several else "")
        ax.set(title=heading, xlabel=t["year"], ylabel=t[f"{figure}_unit"])
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if figure == "point_value":
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: number(v, 4)))
        else:
            _ticks(ax.yaxis)
        ax.legend(fontsize=7)
    for extra in range(len(panels), rows * columns):
        axes[extra // columns][extra % columns].set_visible(False)
    if bands is not None and "draws" in bands and len(bands):
        fig.text(0.01, 0.0, t["band"].format(n=int(bands["draws"].max())), fontsize=7)
    fig.tight_layout()
    return _png(fig)


def projection_figures(years: pd.DataFrame, hospitals: pd.DataFrame, lang: str = "zh",
                       bands: pd.DataFrame | None = None, titles: dict[str, str] | None = None) -> dict[str, bytes]:
    """name -> PNG bytes of each figure there is data for: point_value, balance (pools with a fund),
    payout_by_level."""
    out = {}
    for figure in FIGURES:
        png = path_figure(years, hospitals, figure, lang, bands, titles)
        if png is not None:
            out[figure] = png
    return out
