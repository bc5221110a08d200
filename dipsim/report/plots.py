"""The figures of a scenario run (matplotlib, Agg; Chinese labels in a CJK font, `report.fonts`)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter

from dipsim.report.fonts import cjk_font
from dipsim.report.present import number, run_names, sort_levels
from dipsim.scenarios import BASELINE, ScenarioResults

TEXT = {
    "zh": {"payout_change": "各医院基金支付变化（{s}，相对基线）", "hospital": "医院（按变化排序）",
           "delta": "变化（万元）", "tcm": "中医医院", "other": "其他医院", "winners": "获益医院",
           "losers": "受损医院", "count": "医院数", "scenario": "方案", "winners_losers": "各方案获益与受损医院数",
           "ratio": "支付/费用比（按医院等级）", "level": "医院等级", "point_value": "各统筹区结算点值",
           "value": "点值（元/分）", "tcm_share": "中医医院基金支付占比", "share": "占比",
           "review": "特例单议：申请、核准与金额", "applied": "申请例数", "approved": "核准例数（期望）",
           "amount": "核准金额（万元）", "funds": "基金预算执行率（累计应付 / 序时预算，基准方案）",
           "execution": "执行率", "month": "月份", "warning": "预警线", "alert": "警报线"},
    "en": {"payout_change": "Fund payout change by hospital ({s}, against the baseline)",
           "hospital": "hospital (sorted by change)", "delta": "change (10k yuan)", "tcm": "TCM hospitals",
           "other": "other hospitals", "winners": "winners", "losers": "losers", "count": "hospitals",
           "scenario": "scenario", "winners_losers": "Winners and losers by scenario",
           "ratio": "Payment / cost ratio by hospital level", "level": "hospital level",
           "point_value": "Settlement point value by pool", "value": "point value (yuan / point)",
           "tcm_share": "TCM hospitals' share of the fund payout", "share": "share",
           "review": "Special-case review: applied, approved and amount", "applied": "applied",
           "funds": "Budget execution (claims to date / budget to date, baseline)", "execution": "execution",
           "month": "month", "warning": "warning line", "alert": "alert line",
           "approved": "approved (expected)", "amount": "amount approved (10k yuan)"},
}


def _style() -> None:
    family, _ = cjk_font()
    # no offset text ("1e6" above an axis) and no scientific tick labels, whatever the data: every axis that shows
    # money or counts also gets `_ticks` (thousands separators)
    plt.rcParams.update({"font.family": family, "axes.unicode_minus": False, "figure.dpi": 110,
                         "axes.formatter.useoffset": False, "axes.formatter.limits": (-30, 30)})


def _tick(value: float, _position=None, magnitude: bool = False) -> str:
    """A tick label: thousands separators, at most 2 decimals, trailing zeros dropped (1,250 / 2.5 / -0.25);
    `magnitude`: without the sign (losers drawn to the left of zero are counted as they are)."""
    text = number(abs(value) if magnitude else value, 2)
    return text.rstrip("0").rstrip(".") if "." in text else text


def _ticks(axis, magnitude: bool = False) -> None:
    axis.set_major_formatter(FuncFormatter(lambda v, p: _tick(v, p, magnitude)))


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def figures(results: ScenarioResults, lang: str = "zh") -> dict[str, bytes]:
    """name -> PNG bytes of each figure the run has data for."""
    t = TEXT[lang]
    _style()
    out = {}
    h = results.hospitals
    names = run_names(results.variants, lang)

    def shown(runs) -> list[str]:
        return [names.get(r, r) for r in runs]

    variants = [s for s in results.summary["scenario"] if s != BASELINE]
    if variants:
        moved = results.summary.set_index("scenario")["moved"]
        pick = moved[variants].idxmax()
        rows = h[h["scenario"] == pick].groupby(["hospital_id", "type"], as_index=False)["delta"].sum()
        rows = rows.sort_values("delta")
        fig, ax = plt.subplots(figsize=(9, 3.6))
        tcm = (rows["type"] == "中医").to_numpy()
        ax.bar(np.arange(len(rows)), rows["delta"] / 1e4, color=np.where(tcm, "#c0392b", "#7f8c8d"))
        ax.set(title=t["payout_change"].format(s=names.get(pick, pick)), xlabel=t["hospital"], ylabel=t["delta"],
               xticks=[])
        _ticks(ax.yaxis)
        ax.axhline(0, color="black", linewidth=0.6)
        ax.legend(handles=[Patch(color="#c0392b", label=t["tcm"]), Patch(color="#7f8c8d", label=t["other"])])
        out["payout_change"] = _png(fig)

        s = results.summary[results.summary["scenario"].isin(variants)]
        fig, ax = plt.subplots(figsize=(9, 0.4 * len(s) + 1.2))
        y = np.arange(len(s))
        ax.barh(y, s["winners"], color="#27ae60", label=t["winners"])
        ax.barh(y, -s["losers"], color="#c0392b", label=t["losers"])
        ax.set(yticks=y, yticklabels=shown(s["scenario"]), xlabel=t["count"], title=t["winners_losers"])
        _ticks(ax.xaxis, magnitude=True)
        ax.axvline(0, color="black", linewidth=0.6)
        ax.legend(loc="lower right")
        out["winners_losers"] = _png(fig)

    ratio = h.groupby(["scenario", "level"]).agg(pay=("fund_payout", "sum"), cost=("cost", "sum")).reset_index()
    ratio["ratio"] = ratio["pay"] / ratio["cost"]
    runs = [BASELINE, *variants[:5]]
    table = ratio[ratio["scenario"].isin(runs)].pivot(index="level", columns="scenario", values="ratio")
    table = table.reindex(sort_levels(table.index))  # 三级甲等 ... 一级, then any other level
    table = table[[c for c in runs if c in table.columns]]
    fig, ax = plt.subplots(figsize=(9, 3.6))
    table.rename(columns=names).plot.bar(ax=ax, rot=0)
    ax.set(title=t["ratio"], xlabel=t["level"], ylabel="")
    _ticks(ax.yaxis)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))  # beside the bars, not over them
    out["payment_ratio"] = _png(fig)

    pools = results.pools.pivot(index="scenario", columns="pool", values="point_value")
    pools = pools.reindex([BASELINE, *variants])
    fig, ax = plt.subplots(figsize=(9, 3.6))
    pools.plot(ax=ax, marker="o")
    ax.set(title=t["point_value"], xlabel=t["scenario"], ylabel=t["value"])
    ax.set_xticks(range(len(pools)), shown(pools.index), rotation=30, ha="right", fontsize=7)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: number(v, 4)))
    out["point_value"] = _png(fig)

    s = results.summary
    fig, ax = plt.subplots(figsize=(9, 3.2))
    ax.bar(np.arange(len(s)), s["tcm_hospital_share"] * 100, color="#c0392b")
    ax.set(title=t["tcm_share"], ylabel=f"{t['share']} (%)")
    ax.set_xticks(np.arange(len(s)), shown(s["scenario"]), rotation=30, ha="right", fontsize=7)
    _ticks(ax.yaxis)
    out["tcm_share"] = _png(fig)

    if "review_applied" in s and s["review_applied"].sum() > 0:
        r = s[s["review_applied"] > 0]
        fig, ax = plt.subplots(figsize=(9, 3.4))
        x = np.arange(len(r))
        ax.bar(x - 0.2, r["review_applied"], width=0.4, label=t["applied"])
        ax.bar(x + 0.2, r["review_approved"], width=0.4, label=t["approved"])
        ax2 = ax.twinx()
        ax2.plot(x, r["review_amount"] / 1e4, color="black", marker="o", label=t["amount"])
        ax2.set_ylabel(t["amount"])
        _ticks(ax.yaxis)
        _ticks(ax2.yaxis)
        ax.set(title=t["review"])
        ax.set_xticks(x, shown(r["scenario"]), rotation=30, ha="right", fontsize=7)
        ax.legend(loc="upper left")
        out["review"] = _png(fig)
    if results.funds is not None and len(results.funds):
        out["funds"] = _funds_figure(results.funds, t)
    return out


def _funds_figure(funds: pd.DataFrame, t: dict) -> bytes:
    """Execution by month per pool, with the policy's warning and alert lines."""
    fig, ax = plt.subplots(figsize=(9, 3.6))
    for pool, rows in funds.groupby("pool", sort=True):
        ax.plot(rows["month"], rows["execution"] * 100, marker="o", label=pool)
    for name, style in (("warning", "--"), ("alert", ":")):
        line = 100 * funds[f"{name}_at"].iloc[0]
        ax.axhline(line, color="#c0392b", linestyle=style, linewidth=0.8, label=f"{t[name]} {line:.0f}%")
    ax.axhline(100, color="black", linewidth=0.6)
    ax.set(title=t["funds"], xlabel=t["month"], ylabel=f"{t['execution']} (%)")
    _ticks(ax.yaxis)
    ax.tick_params(axis="x", rotation=30, labelsize=7)
    ax.legend(fontsize=7)
    return _png(fig)

