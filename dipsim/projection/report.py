"""A projection's `report.html` (`dipsim project ... -o DIR`): one self-contained page made with the scenario
report's page and table helpers (`report.html`): the manifest's key facts, the scenarios side by side
(`levers.side_by_side`), the figures (`projection.plots`, embedded as base64 PNG: nothing fetched), the years table.
Every text from a file (titles, names, pools) is escaped."""

from __future__ import annotations

import datetime as dt
import html
from pathlib import Path

import pandas as pd

from dipsim import __version__
from dipsim.projection.levers import LeverResults, side_by_side
from dipsim.report.html import image_html, table_html, write_page
from dipsim.report.present import money_compact, ordered

TEXT = {
    "zh": {"title": "多年预测报告：{t}", "built": "dipsim {v} 生成于 {d}", "facts": "运行信息",
           "comparison": "各方案比较（末年与基年、与基准方案）", "figures": "图表", "years": "各年度、各统筹区",
           "note": "每个预测年度均由与 settle 相同的支付链结算（精确到分）；各方案使用相同的随机种子（相同的病例复制、"
                   "删减与编码漂移）。完整数据见 years.csv、hospitals.csv、comparison.csv。",
           "fact": "项目", "value": "值", "scenarios": "方案", "none": "无"},
    "en": {"title": "Projection report: {t}", "built": "made by dipsim {v} on {d}", "facts": "The run",
           "comparison": "Scenarios compared (the last year against the base year and the baseline)",
           "figures": "Figures", "years": "By year and pool",
           "note": "Every projected year is settled by the payment chain of `settle`, to the fen; every scenario runs "
                   "with the same seed (the same cases copied, dropped and drifted). All the numbers: years.csv, "
                   "hospitals.csv, comparison.csv.",
           "fact": "fact", "value": "value", "scenarios": "scenarios", "none": "none"},
}
# manifest key -> (zh, en) label of the facts shown
FACTS = {"projection": ("预测", "projection"), "years": ("预测年数", "years projected"), "seed": ("随机种子", "seed"),
         "policy_name": ("政策", "policy"), "policy_sha256": ("政策哈希（sha256）", "policy sha256"),
         "mode": ("付费方式", "payment mode"), "scheme": ("DRG 分组方案", "DRG scheme"),
         "budgets": ("基年预算", "base-year budgets"), "draws": ("蒙特卡洛抽样次数", "Monte Carlo draws"),
         "draw_seed": ("抽样种子", "draw seed"), "dipsim_version": ("dipsim 版本", "dipsim version")}


def _fact(key: str, value, lang: str) -> str:
    if key == "budgets" and isinstance(value, dict):
        return "; ".join(f"{pool} {money_compact(v)}" for pool, v in value.items())
    return TEXT[lang]["none"] if value is None else str(value)


def write_projection_report(results: LeverResults, figures: dict[str, bytes], manifest: dict, path, title: str,
                            lang: str = "zh") -> Path:
    """Write DIR/report.html; `manifest`: the fields `dipsim project` writes into manifest.json."""
    t = TEXT[lang]
    facts = {**manifest, "dipsim_version": __version__}
    rows = [{t["fact"]: FACTS[k][0 if lang == "zh" else 1], t["value"]: _fact(k, facts[k], lang)}
            for k in FACTS if k in facts and (facts[k] not in (None, "", 0) or k in ("draws", "seed"))]
    rows.insert(1, {t["fact"]: t["scenarios"], t["value"]: "; ".join(
        f"{s.name}: {s.title}" for s in results.scenarios)})
    names = results.titles
    runs = list(names)
    parts = [
        f"<p>{html.escape(t['built'].format(v=__version__, d=dt.date.today().isoformat()))}</p>",
        f"<p>{html.escape(t['note'])}</p>",
        f"<h2>{html.escape(t['facts'])}</h2>", table_html(pd.DataFrame(rows), None, lang, {}),
        f"<h2>{html.escape(t['comparison'])}</h2>", table_html(side_by_side(results.comparison, lang), None, lang, {}),
        f"<h2>{html.escape(t['figures'])}</h2>", *(image_html(name, png) for name, png in figures.items()),
        f"<h2>{html.escape(t['years'])}</h2>",
        table_html(ordered(results.years, runs, "years"), "years", lang, names),
    ]
    return write_page(path, t["title"].format(t=title), parts)
