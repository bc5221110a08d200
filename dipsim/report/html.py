"""`report.html`: one self-contained page (figures embedded as base64 PNG, no external files) of a scenario run."""

from __future__ import annotations

import base64
import datetime as dt
import html
from pathlib import Path

import pandas as pd

from dipsim import __version__
from dipsim.report.plots import figures
from dipsim.report.present import NUMERIC_KINDS, column, ordered, run_names, text_frame
from dipsim.scenarios import ScenarioResults

HEAD = {
    "zh": {"title": "情景比较报告：{t}", "built": "dipsim {v} 生成于 {d}", "summary": "各方案汇总",
           "by_level": "按医院等级", "by_type": "中医医院与其他医院", "pools": "各统筹区结算点值",
           "funds": "基金运行监测（基准方案）",
           "figures": "图表", "note": "固定总额下，任何规则变化都是医院之间的再分配：获益之和等于受损之和。",
           "scheme_hospitals": "分组方案变化：各医院（按变化金额排序）",
           "splits": "分组方案变化：拆分的基准病组（按点数价值变化排序）",
           "scheme_note": "点数价值 = 病例最终点数 × 所在统筹区点值（元，不含按项目付费部分与分位取整）；"
                          "“移组” 指病组编码改变。完整表格见 regrouping.csv、splits.csv、families.csv、"
                          "scheme_hospitals.csv。"},
    "en": {"title": "Scenario report: {t}", "built": "made by dipsim {v} on {d}", "summary": "Summary by scenario",
           "by_level": "By hospital level", "by_type": "TCM hospitals and the others",
           "pools": "Point values by pool",
           "funds": "Fund monitoring (baseline)", "figures": "Figures",
           "note": "Under a fixed budget every rule moves money between hospitals: the gains add up to the losses.",
           "scheme_hospitals": "Scheme change: hospitals (by the size of their change)",
           "splits": "Scheme change: baseline groups that split (by the size of their value change)",
           "scheme_note": "Value = a case's final points x its pool's point value (yuan; item-paid cost and the fen "
                          "rounding aside); a case moved when its DRG code changed. The full tables: regrouping.csv, "
                          "splits.csv, families.csv, scheme_hospitals.csv."},
}

SCHEME_ROWS = 20  # the hospitals and split groups a scheme change shows (the CSV files have them all)


def table_html(frame: pd.DataFrame, table: str | None, lang: str, names: dict[str, str]) -> str:
    """`frame` as an HTML table: numbers formatted by `present` (yuan with thousands separators, percents; never
    scientific notation), headers and coded values in `lang`, every header and cell escaped; numbers right-aligned."""
    shown = text_frame(frame, table, lang, names)
    numeric = [column(c, table).kind in NUMERIC_KINDS for c in frame.columns]
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in shown.columns)
    rows = ["<tr>" + "".join(f"<td class='{'n' if n else 't'}'>{html.escape(v)}</td>" for v, n in zip(row, numeric))
            + "</tr>" for row in shown.itertuples(index=False, name=None)]
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _scheme_change(results: ScenarioResults, text: dict, lang: str, runs: list[str], names: dict) -> list[str]:
    """The variants that change the DRG scheme: their hospitals and the baseline groups that split, the largest
    changes first, money to the fen (nothing without such a variant)."""
    if results.scheme_hospitals is None or results.splits is None:
        return []
    parts = [f"<p>{html.escape(text['scheme_note'])}</p>"]
    for key, frame, size in (("scheme_hospitals", results.scheme_hospitals, results.scheme_hospitals["delta"]),
                             ("splits", results.splits,
                              results.splits["value_after"] - results.splits["value_before"])):
        shown = frame.assign(_size=size.abs()).sort_values(["_size"], ascending=False, kind="stable")
        shown = ordered(shown, runs, key)
        shown = shown.groupby("scenario", sort=False).head(SCHEME_ROWS).drop(columns="_size")
        parts += [f"<h2>{html.escape(text[key])}</h2>", table_html(shown, key, lang, names)]
    return parts


STYLE = ("<style>body{font-family:'Noto Sans CJK SC','Microsoft YaHei',sans-serif;margin:2em;max-width:1100px}"
         "table{border-collapse:collapse;font-size:13px}td,th{padding:3px 8px;border-bottom:1px solid #ddd}"
         "th{text-align:center}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}"
         "td.t{text-align:left}img{max-width:100%}</style>")


def image_html(name: str, png: bytes) -> str:
    """A figure embedded in the page (base64 PNG: no file beside it, nothing fetched)."""
    data = base64.b64encode(png).decode("ascii")
    return f"<p><img alt='{html.escape(name)}' src='data:image/png;base64,{data}'></p>"


def write_page(path, heading: str, parts: list[str]) -> Path:
    """Write a whole self-contained page: `heading` (text, escaped here) as its title and first heading, then
    `parts` (HTML, each escaped by its maker)."""
    from dipsim.io.writers import atomic_path

    heading = html.escape(heading)
    page = ["<!DOCTYPE html><html><head><meta charset='utf-8'>", f"<title>{heading}</title>",
            f"{STYLE}</head><body>", f"<h1>{heading}</h1>", *parts, "</body></html>"]
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(page), encoding="utf-8")
    return path


def write_report(results: ScenarioResults, path, title: str, lang: str = "zh") -> Path:
    """Write the report; returns its path."""
    text = HEAD[lang]
    names = run_names(results.variants, lang)
    runs = list(results.summary["scenario"])
    images = figures(results, lang)

    def table(key: str, frame) -> list[str]:
        """A heading and the frame (runs and levels in order, columns named in `lang`); nothing without a frame."""
        if frame is None:
            return []
        return [f"<h2>{html.escape(text[key])}</h2>", table_html(ordered(frame, runs, key), key, lang, names)]

    pools = results.pools[[c for c in ("scenario", "pool", "point_value", "status", "budget_available",
                                       "fund_payout") if c in results.pools]]
    parts = [
        f"<p>{html.escape(text['built'].format(v=__version__, d=dt.date.today().isoformat()))}</p>",
        f"<p>{html.escape(text['note'])}</p>",
        *table("summary", results.summary), *table("pools", pools), *table("by_level", results.by_level),
        *table("by_type", results.by_type),
        *table("funds", results.funds if results.funds is not None and len(results.funds) else None),
        *_scheme_change(results, text, lang, runs, names),
        f"<h2>{html.escape(text['figures'])}</h2>",
        *(image_html(name, png) for name, png in images.items()),
    ]
    return write_page(path, text["title"].format(t=title), parts)
