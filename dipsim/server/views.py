"""What the 情景对比 and 医院详情 pages read, as tables of rows (money: yuan strings to the fen, `regions.yuan`), built
from a run's kept result (`runs._result`: whole fen) or the region's baseline, and the columns each table has in a
download (`downloads.table_bytes`: Chinese headers, money in yuan to the fen).

Scope: a hospital account gets only its own hospital's rows; the aggregates over hospitals (by level, by type, the
pools' fund payout, the summary with its special-case review, the fund monitoring) are the bureau's. Point values
are published to every account."""

from __future__ import annotations

from collections.abc import Iterable

from dipsim.report import present
from dipsim.report.present import Column
from dipsim.server.regions import yuan

MONEY, COUNT, POINTS, VALUE, PCT100, SHARE, NUMBER = (present.MONEY, present.COUNT, present.POINTS,
                                                      present.POINT_VALUE, present.PERCENT100, present.PERCENT,
                                                      present.NUMBER)
C = Column


def _by(key: str, zh: str, en: str) -> list[tuple[str, Column]]:
    """A run's fund payout by hospital level or type: the key, hospitals, baseline and variant payout, the change."""
    return [(key, C(zh, en)), ("hospitals", C("医院数", "hospitals", COUNT)),
            ("baseline_payout", C("基准基金支付（元）", "baseline fund payout (yuan)", MONEY)),
            ("payout", C("方案基金支付（元）", "variant fund payout (yuan)", MONEY)),
            ("change", C("变化（元）", "change (yuan)", MONEY)),
            ("change_pct", C("变化率", "change (%)", PCT100))]


# every table's columns, in order (a download has them, with these headers and kinds)
COLUMNS: dict[str, list[tuple[str, Column]]] = {
    "point_values": [("pool", C("统筹区-险种", "pool")),
                     ("baseline", C("基准点值（元/点）", "baseline point value (yuan per point)", VALUE)),
                     ("variant", C("方案点值（元/点）", "variant point value (yuan per point)", VALUE)),
                     ("change_pct", C("点值变化率", "point value change (%)", PCT100)),
                     ("status", C("点值状态", "point value status"))],
    "pools": [("pool", C("统筹区-险种", "pool")),
              ("baseline_fund_payout", C("基准基金支付（元）", "baseline fund payout (yuan)", MONEY)),
              ("fund_payout", C("方案基金支付（元）", "variant fund payout (yuan)", MONEY)),
              ("change", C("变化（元）", "change (yuan)", MONEY))],
    "by_level": _by("level", "医院等级", "hospital level"),
    "by_type": _by("type", "机构类型", "hospital type"),
    "summary": [("scenario", C("方案", "scenario")), ("fund_payout", C("基金支付（元）", "fund payout (yuan)", MONEY)),
                ("winners", C("获益医院数", "winners", COUNT)), ("losers", C("受损医院数", "losers", COUNT)),
                ("unchanged", C("不变医院数", "unchanged", COUNT)),
                ("moved", C("转移金额（元）", "money moved (yuan)", MONEY)),
                ("tcm_hospital_share", C("中医医院支付占比", "TCM hospitals' share", SHARE)),
                ("review_applied", C("特例单议申请例数", "special-case review: applied", COUNT)),
                ("review_approved", C("特例单议核准例数（期望）", "special-case review: approved (expected)", NUMBER)),
                ("review_amount", C("特例单议核准金额（元）", "special-case review: amount (yuan)", MONEY))],
    "overview_by_level": [("level", C("医院等级", "hospital level")), ("hospitals", C("医院数", "hospitals", COUNT)),
                          ("cases", C("病例数", "cases", COUNT))],
    "overview_by_type": [("type", C("机构类型", "hospital type")), ("hospitals", C("医院数", "hospitals", COUNT)),
                         ("cases", C("病例数", "cases", COUNT))],
    "overview_pools": [("pool", C("统筹区-险种", "pool")), ("cases", C("病例数", "cases", COUNT)),
                       ("cost", C("医疗总费用（元）", "cost (yuan)", MONEY)),
                       ("budget", C("预算（元）", "budget (yuan)", MONEY)),
                       ("budget_available", C("可分配预算（元）", "budget available (yuan)", MONEY)),
                       ("point_value", C("结算点值（元/点）", "point value (yuan per point)", VALUE)),
                       ("status", C("点值状态", "point value status")),
                       ("fund_payout", C("基金支付（元）", "fund payout (yuan)", MONEY))],
    "funds": [("pool", C("统筹区-险种", "pool")), ("month", C("月份", "month")), ("cases", C("病例数", "cases", COUNT)),
              ("claims", C("当月基金应付（元）", "claims (yuan)", MONEY)),
              ("claims_to_date", C("累计基金应付（元）", "claims to date (yuan)", MONEY)),
              ("budget_to_date", C("序时预算（元）", "budget to date (yuan)", MONEY)),
              ("execution", C("预算执行率", "execution", SHARE)), ("level", C("监测等级", "monitoring level")),
              ("warning_at", C("预警线", "warning line", SHARE)), ("alert_at", C("警报线", "alert line", SHARE)),
              ("projected_point_value", C("预测年终点值（元/点）", "projected point value (yuan per point)", VALUE)),
              ("projected_balance", C("预测年末结余（元）", "projected balance (yuan)", MONEY)),
              ("months_of_capacity", C("可支付月数", "months of capacity", NUMBER))],
    "groups": [("group", C("病组", "group")), ("cases", C("病例数", "cases", COUNT)),
               ("cost", C("医疗总费用（元）", "cost (yuan)", MONEY)),
               ("payment", C("支付（元）", "payment (yuan)", MONEY)),
               ("balance", C("盈亏（元）", "balance (yuan)", MONEY)),
               ("payment_ratio", C("支付/费用", "payment / cost", NUMBER))],
    "chain": [("pool", C("统筹区-险种", "pool")), ("step", C("步骤", "step")), ("item", C("项目", "item")),
              ("points", C("点数", "points", POINTS)), ("amount", C("金额（元）", "amount (yuan)", MONEY)),
              ("value", C("数值", "value", NUMBER))],
}
BUREAU_RUN_TABLES = ("pools", "by_level", "by_type", "summary")
RUN_TABLES = ("hospitals", "point_values", *BUREAU_RUN_TABLES)  # the downloads of a run


def _pct(change: int, base: int) -> float | None:
    return round(change / base * 100, 4) if base else None


def hospital_rows(result: dict, names: dict, user) -> list[dict]:
    """A run's hospital table: per (hospital, pool) the baseline and variant fund payout, change in yuan and %
    (a hospital account: its own rows only)."""
    rows = []
    for h in result["hospitals"]:
        if not user.is_bureau and h["hospital_id"] != user.hospital_id:
            continue
        change = h["variant_fen"] - h["baseline_fen"]
        rows.append({"hospital_id": h["hospital_id"], "name": names.get(h["hospital_id"]), "pool": h["pool"],
                     "level": h["level"], "type": h["type"], "baseline_points": h["baseline_points"],
                     "points": h["points"], "baseline_payout": yuan(h["baseline_fen"]),
                     "payout": yuan(h["variant_fen"]), "change": yuan(change),
                     "change_pct": _pct(change, h["baseline_fen"])})
    return rows


def point_values(result: dict) -> list[dict]:
    return [{"pool": p["pool"], "baseline": p["baseline_point_value"], "variant": p["point_value"],
             "change_pct": round((p["point_value"] / p["baseline_point_value"] - 1) * 100, 4)
             if p["baseline_point_value"] else None, "status": p["status"]} for p in result["pools"]]


def _grouped(result: dict, key: str, order: Iterable[str]) -> list[dict]:
    """The hospital rows summed by `key` (level / type) in whole fen: hospitals (distinct), baseline and variant
    payout, change in yuan and %; keys in `order`, then any other in name order."""
    sums: dict = {}
    for h in result["hospitals"]:
        entry = sums.setdefault(h[key], {"hospitals": set(), "baseline": 0, "variant": 0})
        entry["hospitals"].add(h["hospital_id"])
        entry["baseline"] += h["baseline_fen"]
        entry["variant"] += h["variant_fen"]
    order = list(order)
    keys = [k for k in order if k in sums] + sorted((k for k in sums if k not in order), key=str)
    return [{key: k, "hospitals": len(sums[k]["hospitals"]), "baseline_payout": yuan(sums[k]["baseline"]),
             "payout": yuan(sums[k]["variant"]), "change": yuan(sums[k]["variant"] - sums[k]["baseline"]),
             "change_pct": _pct(sums[k]["variant"] - sums[k]["baseline"], sums[k]["baseline"])} for k in keys]


def by_level(result: dict) -> list[dict]:
    """By hospital level, the levels in their natural order (三级甲等 first)."""
    levels = present.sort_levels(h["level"] for h in result["hospitals"])
    return _grouped(result, "level", levels)


def by_type(result: dict) -> list[dict]:
    from dipsim.schema import HOSPITAL_TYPES

    return _grouped(result, "type", HOSPITAL_TYPES)


def pools(result: dict) -> list[dict]:
    return [{"pool": p["pool"], "baseline_fund_payout": yuan(p["baseline_fund_payout_fen"]),
             "fund_payout": yuan(p["fund_payout_fen"]),
             "change": yuan(p["fund_payout_fen"] - p["baseline_fund_payout_fen"])} for p in result["pools"]]


def summary(result: dict, name: str) -> list[dict]:
    """The baseline's and the variant's summary: winners, losers, money moved, TCM hospitals' share, and the
    special-case review (特例单议): cases applied, approved (expected, at review.approval_rate), the amount approved
    (None for a run kept before the review was)."""
    rows = []
    for key in ("baseline", "variant"):
        s = result["summary"].get(key)
        if s is None:
            continue
        amount = s.get("review_amount_fen")
        rows.append({"scenario": present.BASELINE if key == "baseline" else name, "key": key,
                     "fund_payout": yuan(s["fund_payout_fen"]), "winners": s["winners"], "losers": s["losers"],
                     "unchanged": s["unchanged"], "moved": yuan(s["moved_fen"]),
                     "tcm_hospital_share": s["tcm_hospital_share"], "review_applied": s.get("review_applied"),
                     "review_approved": s.get("review_approved"),
                     "review_amount": None if amount is None else yuan(amount)})
    return rows


def run_table(name: str, result: dict, run_name: str, names: dict, user) -> list[dict]:
    """One of a run's tables (`RUN_TABLES`) by name, scoped to the user (the caller checks the bureau's)."""
    if name == "hospitals":
        return hospital_rows(result, names, user)
    if name == "point_values":
        return point_values(result)
    if name == "pools":
        return pools(result)
    if name == "by_level":
        return by_level(result)
    if name == "by_type":
        return by_type(result)
    if name == "summary":
        return summary(result, run_name)
    raise KeyError(name)


def compare(runs: list[tuple[str, dict, dict]], names: dict, user) -> dict:
    """Several done runs of one region side by side: `runs` = [(run id, record, result)]. Point values per pool
    (the baseline's and each run's) and per (hospital, pool) the baseline payout and each run's payout, change in
    yuan and % (a hospital account: its own rows)."""
    first = runs[0][2]
    pools_ = [{"pool": p["pool"], "baseline": p["baseline_point_value"],
               "runs": [next(q["point_value"] for q in result["pools"] if q["pool"] == p["pool"])
                        for _, _, result in runs]} for p in first["pools"]]
    by_key = [{(h["hospital_id"], h["pool"]): h for h in result["hospitals"]} for _, _, result in runs]
    hospitals = []
    for h in first["hospitals"]:
        if not user.is_bureau and h["hospital_id"] != user.hospital_id:
            continue
        key, base = (h["hospital_id"], h["pool"]), h["baseline_fen"]
        each = []
        for table in by_key:
            variant = table[key]["variant_fen"]
            each.append({"payout": yuan(variant), "change": yuan(variant - base), "change_pct": _pct(variant - base,
                                                                                                     base)})
        hospitals.append({"hospital_id": h["hospital_id"], "name": names.get(h["hospital_id"]), "pool": h["pool"],
                          "level": h["level"], "type": h["type"], "baseline_payout": yuan(base), "runs": each})
    return {"runs": [{"id": run_id, "name": record["name"]} for run_id, record, _ in runs], "point_values": pools_,
            "hospitals": hospitals}


def compare_flat(view: dict) -> tuple[list[dict], list[tuple[str, Column]], list[dict], list[tuple[str, Column]]]:
    """The compare view as two flat tables for a download: hospitals (a payout, change and % column per run) and
    point values (a column per run), with their columns."""
    runs = view["runs"]
    head = [("hospital_id", C("医院编码", "hospital")), ("name", C("医院名称", "hospital name")),
            ("pool", C("统筹区-险种", "pool")), ("level", C("医院等级", "hospital level")),
            ("type", C("机构类型", "hospital type")),
            ("baseline_payout", C("基准基金支付（元）", "baseline fund payout (yuan)", MONEY))]
    for i, r in enumerate(runs):
        head += [(f"payout_{i}", C(f"{r['name']}：基金支付（元）", f"{r['name']}: fund payout (yuan)", MONEY)),
                 (f"change_{i}", C(f"{r['name']}：变化（元）", f"{r['name']}: change (yuan)", MONEY)),
                 (f"change_pct_{i}", C(f"{r['name']}：变化率", f"{r['name']}: change (%)", PCT100))]
    rows = []
    for h in view["hospitals"]:
        row = {k: h[k] for k in ("hospital_id", "name", "pool", "level", "type", "baseline_payout")}
        for i, each in enumerate(h["runs"]):
            row.update({f"payout_{i}": each["payout"], f"change_{i}": each["change"],
                        f"change_pct_{i}": each["change_pct"]})
        rows.append(row)
    value_head = [("pool", C("统筹区-险种", "pool")),
                  ("baseline", C("基准点值（元/点）", "baseline point value (yuan per point)", VALUE))]
    value_head += [(f"run_{i}", C(f"{r['name']}：点值（元/点）", f"{r['name']}: point value (yuan per point)", VALUE))
                   for i, r in enumerate(runs)]
    values = [{"pool": p["pool"], "baseline": p["baseline"], **{f"run_{i}": v for i, v in enumerate(p["runs"])}}
              for p in view["point_values"]]
    return rows, head, values, value_head


CHAIN_POINTS = {"group_points": ("1 病组分值", "1 group points"), "outlier": ("2 异常病例调整后", "2 after outliers"),
                "coefficient": ("3 医院系数后", "3 after the hospital coefficient"),
                "tcm_bonus": ("4 中医加成后", "4 after the TCM bonus"),
                "priced": ("5 辅助目录后（定价点数）", "5 after the auxiliary factor (priced points)"),
                "supervised": ("6 监管扣减后", "6 after supervision cuts"),
                "reviewed": ("7 特例单议后", "7 after special-case review"),
                "final": ("8 医院增长上限后（最终点数）", "8 after the hospital growth cap (final points)")}
CHAIN_MONEY = {"cost": ("医疗总费用", "cost"),
               "group_payment": ("9-10 病组支付（点值×点数＋按项目，按分分配）", "9-10 group payment"),
               "band_adjustment": ("10 结算调整（超支分担/结余留用）", "10 band adjustment"),
               "payment": ("10 支付合计", "10 payment"), "patient_paid": ("患者自付", "patient paid"),
               "fund_payout": ("10 基金支付", "10 fund payout"), "prepaid": ("11 预付", "11 prepaid"),
               "deposit": ("11 质量保证金", "11 quality deposit"),
               "deposit_released": ("11 保证金返还", "11 deposit released"), "clearing": ("11 年终清算", "11 clearing")}


def chain_rows(chain: dict, lang: str = "zh") -> list[dict]:
    """A hospital's payment chain (`LoadedRegion.hospital_chain`) as one flat table for a download."""
    pick = 0 if lang == "zh" else 1
    rows = []
    for p in chain["pools"]:
        rows.append({"pool": p["pool"], "step": "0", "item": "病例数" if pick == 0 else "cases", "value": p["cases"]})
        for s in p["points"]:
            rows.append({"pool": p["pool"], "step": CHAIN_POINTS[s["step"]][pick].split(" ")[0],
                         "item": CHAIN_POINTS[s["step"]][pick].split(" ", 1)[1], "points": s["points"]})
        review = p["review"]
        rows += [{"pool": p["pool"], "step": "7", "item": "特例单议申请例数" if pick == 0 else "review: applied",
                  "value": review["applied"]},
                 {"pool": p["pool"], "step": "7", "item": "特例单议核准例数（期望）" if pick == 0
                  else "review: approved (expected)", "value": review["approved"]},
                 {"pool": p["pool"], "step": "7", "item": "按项目支付" if pick == 0 else "paid by item",
                  "amount": review["item_paid"]},
                 {"pool": p["pool"], "step": "2", "item": "按项目付费病例数" if pick == 0 else "cases paid by item",
                  "value": p["paid_by_item"]},
                 {"pool": p["pool"], "step": "9", "item": "结算点值（元/点）" if pick == 0 else "point value",
                  "value": p["point_value"]}]
        for key, labels in CHAIN_MONEY.items():
            step, item = labels[pick].split(" ", 1) if labels[pick][0].isdigit() else ("", labels[pick])
            rows.append({"pool": p["pool"], "step": step, "item": item, "amount": p["money"][key]})
    for key, labels in CHAIN_MONEY.items():  # the hospital's totals over its pools
        step, item = labels[pick].split(" ", 1) if labels[pick][0].isdigit() else ("", labels[pick])
        rows.append({"pool": "合计" if pick == 0 else "total", "step": step, "item": item,
                     "amount": chain["total"][key]})
    return rows
