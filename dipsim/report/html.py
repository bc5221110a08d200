"""`report.html`: one self-contained page (figures embedded as base64 PNG, no external files) of a scenario run."""

from __future__ import annotations

import base64
import datetime as dt
import html
from pathlib import Path

from dipsim import __version__
from dipsim.report.plots import figures, frame_html
from dipsim.scenarios import ScenarioResults

HEAD = {
    "zh": {"title": "情景比较报告：{t}", "built": "dipsim {v} 生成于 {d}", "summary": "各方案汇总",
           "by_level": "按医院等级", "by_type": "中医医院与其他医院", "funds": "基金运行监测（基准方案）",
           "figures": "图表", "note": "固定总额下，任何规则变化都是医院之间的再分配：获益之和等于受损之和。",
           "scheme_hospitals": "分组方案变化：各医院（按变化金额排序）",
           "splits": "分组方案变化：拆分的基准病组（按点数价值变化排序）",
           "scheme_note": "点数价值 = 病例最终点数 × 所在统筹区点值（元，不含按项目付费部分与分位取整）；"
                          "“移组” 指病组编码改变。完整表格见 regrouping.csv、splits.csv、families.csv、"
                          "scheme_hospitals.csv。"},
    "en": {"title": "Scenario report: {t}", "built": "made by dipsim {v} on {d}", "summary": "Summary by scenario",
           "by_level": "By hospital level", "by_type": "TCM hospitals and the others",
           "funds": "Fund monitoring (baseline)", "figures": "Figures",
           "note": "Under a fixed budget every rule moves money between hospitals: the gains add up to the losses.",
           "scheme_hospitals": "Scheme change: hospitals (by the size of their change)",
           "splits": "Scheme change: baseline groups that split (by the size of their value change)",
           "scheme_note": "Value = a case's final points x its pool's point value (yuan; item-paid cost and the fen "
                          "rounding aside); a case moved when its DRG code changed. The full tables: regrouping.csv, "
                          "splits.csv, families.csv, scheme_hospitals.csv."},
}
COLUMNS = {
    "zh": {"scenario": "方案", "winners": "获益医院", "losers": "受损医院", "unchanged": "不变",
           "moved": "转移金额（元）", "fund_payout": "基金支付（元）", "tcm_hospital_share": "中医医院占比",
           "review_applied": "特例申请", "review_approved": "特例核准", "review_amount": "特例金额（元）",
           "level": "等级", "delta": "变化（元）", "pool": "统筹区-险种", "month": "月份", "cases": "病例数",
           "claims": "基金应付（元）", "claims_to_date": "累计应付（元）", "budget_to_date": "序时预算（元）",
           "execution": "预算执行率", "warning_at": "预警线", "alert_at": "警报线",
           "projected_point_value": "预测年终点值",
           "projected_balance": "预测年末结余（元）", "months_of_capacity": "可支付月数",
           "hospital_id": "医院", "moved_cases": "移组病例", "points_before": "基准点数", "points_after": "方案点数",
           "value_before": "基准点数价值（元）", "value_after": "方案点数价值（元）", "why": "主要原因（ADRG）",
           "from_group": "基准病组", "to_groups": "去向组数", "into": "去向（病例数）"},
    "en": {},
}


SCHEME_ROWS = 20  # the hospitals and split groups a scheme change shows (the CSV files have them all)


def _scheme_change(results: ScenarioResults, text: dict, names: dict) -> list[str]:
    """The variants that change the DRG scheme: their hospitals and the baseline groups that split, the largest
    changes first, money to the fen (nothing without such a variant)."""
    if results.scheme_hospitals is None or results.splits is None:
        return []
    parts = [f"<p>{html.escape(text['scheme_note'])}</p>"]
    for key, frame, size in (("scheme_hospitals", results.scheme_hospitals, results.scheme_hospitals["delta"]),
                             ("splits", results.splits,
                              results.splits["value_after"] - results.splits["value_before"])):
        shown = frame.assign(_size=size.abs()).sort_values(["scenario", "_size"], ascending=[True, False],
                                                           kind="stable")
        shown = shown.groupby("scenario", sort=False).head(SCHEME_ROWS).drop(columns="_size")
        formats = {"points_before": "{:,.1f}", "points_after": "{:,.1f}", "value_before": "{:,.2f}",
                   "value_after": "{:,.2f}", "delta": "{:,.2f}"}
        shown = shown.assign(**{c: shown[c].map(f.format) for c, f in formats.items() if c in shown})
        parts += [f"<h2>{html.escape(text[key])}</h2>", frame_html(shown.rename(columns=names))]
    return parts


def write_report(results: ScenarioResults, path, title: str, lang: str = "zh") -> Path:
    """Write the report; returns its path."""
    from dipsim.io.writers import atomic_path

    text, names = HEAD[lang], COLUMNS[lang]
    images = figures(results, lang)
    heading = html.escape(text["title"].format(t=title))

    def table(key: str, frame) -> list[str]:
        """A heading and the frame with its columns named in `lang`; nothing without a frame."""
        if frame is None:
            return []
        return [f"<h2>{html.escape(text[key])}</h2>", frame_html(frame.rename(columns=names))]

    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{heading}</title>",
        "<style>body{font-family:'Noto Sans CJK SC','Microsoft YaHei',sans-serif;margin:2em;max-width:1000px}"
        "table{border-collapse:collapse;font-size:13px}td,th{padding:3px 8px;border-bottom:1px solid #ddd;"
        "text-align:right}img{max-width:100%}</style></head><body>",
        f"<h1>{heading}</h1>",
        f"<p>{html.escape(text['built'].format(v=__version__, d=dt.date.today().isoformat()))}</p>",
        f"<p>{html.escape(text['note'])}</p>",
        *table("summary", results.summary), *table("by_level", results.by_level),
        *table("by_type", results.by_type),
        *table("funds", results.funds if results.funds is not None and len(results.funds) else None),
        *_scheme_change(results, text, names),
        f"<h2>{html.escape(text['figures'])}</h2>",
    ]
    for name, png in images.items():
        data = base64.b64encode(png).decode("ascii")
        parts.append(f"<p><img alt='{name}' src='data:image/png;base64,{data}'></p>")
    parts.append("</body></html>")
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(parts), encoding="utf-8")
    return path
