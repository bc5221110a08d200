"""How dipsim's numbers and names read to people: money in yuan with thousands separators (or 万元 / 亿元), percents,
hospital levels in their natural order, Chinese column labels for every scenario output, and readable names for
sweep variants. The static report (`report.html`), the Excel / CSV exports (`report.export`) and the server share
it, so a number reads the same everywhere; nothing here computes a payment.

Rules (the tests hold them):
- money: rounded half away from zero to the fen on the number as written (9,999.995 -> 10,000.00), thousands
  separators, never scientific notation; -0.001 is 0.00, never -0.00. A missing value (None, NaN) is "—" in text
  and an empty cell in Excel and CSV.
- compact money (`money_compact`, for large totals): 元 below 1万元, 万元 from 10,000.00 元, 亿元 from
  100,000,000.00 元, each with 2 decimals; the unit is chosen on the value rounded to the fen, and a 万元 figure
  that would round to 10,000.00 万元 is written 1.00 亿元 instead.
- hospital levels: 三级甲等, 三级乙等, 三级, 二级甲等, 二级乙等, 二级, 一级 (`schema.HOSPITAL_LEVELS`; the short
  forms 三甲 三乙 二甲 二乙 sort with their full names), then any other level in Unicode order, then a missing one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

import pandas as pd

from dipsim.schema import HOSPITAL_LEVELS

DASH = "—"  # a missing number in text
BASELINE = "baseline"  # the baseline run's name (`scenarios.BASELINE`; not imported: scenarios imports this module)
WAN, YI = Decimal(10_000), Decimal(100_000_000)
FEN = Decimal("0.01")


def _decimal(value) -> Decimal | None:
    """The number as written (a float by its shortest repr, so 9999.995 is 9999.995, not the binary value just
    below it); None for a missing or non-finite one."""
    if value is None or isinstance(value, bool):
        return None if value is None else Decimal(int(value))
    try:
        if isinstance(value, Decimal):
            number = value
        elif isinstance(value, int):
            number = Decimal(value)
        else:
            number = Decimal(repr(float(value)))
    except (TypeError, ValueError, InvalidOperation):
        return None
    return number if number.is_finite() else None


def _fixed(number: Decimal, digits: int) -> str:
    """`number` rounded half away from zero to `digits` decimals, with thousands separators; no negative zero."""
    rounded = number.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
    if rounded == 0:
        rounded = abs(rounded)
    return f"{rounded:,.{digits}f}"


def missing(value) -> bool:
    return _decimal(value) is None


def yuan(value) -> str:
    """Yuan to the fen with thousands separators, no unit (a cell under a （元） header): "1,386,234,567.89"."""
    number = _decimal(value)
    return DASH if number is None else _fixed(number, 2)


def money(value) -> str:
    """"1,386,234,567.89 元"; "—" when missing."""
    number = _decimal(value)
    return DASH if number is None else f"{_fixed(number, 2)} 元"


def money_compact(value) -> str:
    """A large total for reading: "13.86 亿元", "1,234.57 万元", "9,999.99 元" (see the module's rules)."""
    number = _decimal(value)
    if number is None:
        return DASH
    fen = number.quantize(FEN, rounding=ROUND_HALF_UP)
    if abs(fen) >= WAN:
        wan = (fen / WAN).quantize(FEN, rounding=ROUND_HALF_UP)
        if abs(fen) < YI and abs(wan) < WAN:
            return f"{_fixed(wan, 2)} 万元"
        return f"{_fixed(fen / YI, 2)} 亿元"
    return f"{_fixed(fen, 2)} 元"


def number(value, digits: int = 2) -> str:
    """A number with `digits` decimals and thousands separators, never in scientific notation; "—" when missing."""
    parsed = _decimal(value)
    return DASH if parsed is None else _fixed(parsed, digits)


def count(value) -> str:
    """A whole number with thousands separators: "1,234"."""
    return number(value, 0)


def percent(fraction, digits: int = 2, signed: bool = False) -> str:
    """A fraction as a percent: 0.1235 -> "12.35%"; `signed`: "+12.35%", "-3.10%", and "0.00%" for zero (after
    rounding); "—" when missing."""
    parsed = _decimal(fraction)
    if parsed is None:
        return DASH
    text = _fixed(parsed * 100, digits)
    if signed and not text.startswith("-") and Decimal(text.replace(",", "")) != 0:
        text = "+" + text
    return f"{text}%"


def plain(value) -> str:
    """A number as short as it is exact, with no exponent and no thousands separators: 0.05, 1.1, 100, 0.0000001."""
    parsed = _decimal(value)
    if parsed is None:
        return DASH
    text = format(parsed.normalize(), "f")
    return "0" if text in ("-0", "0") else text


# ---------------------------------------------------------------------------------------------- hospital levels

LEVEL_ORDER: tuple[str, ...] = HOSPITAL_LEVELS
LEVEL_ALIASES = {"三甲": "三级甲等", "三乙": "三级乙等", "二甲": "二级甲等", "二乙": "二级乙等"}


def level_key(level) -> tuple:
    """Sort key of a hospital level: the natural order (`LEVEL_ORDER`), then other levels by their text, then a
    missing level."""
    if level is None or (isinstance(level, float) and math.isnan(level)) or str(level).strip() == "":
        return (2, 0, "")
    text = str(level).strip()
    text = LEVEL_ALIASES.get(text, text)
    if text in LEVEL_ORDER:
        return (0, LEVEL_ORDER.index(text), "")
    return (1, 0, text)


def sort_levels(levels: Iterable) -> list:
    """The distinct levels of `levels` in their natural order (`level_key`)."""
    return sorted(dict.fromkeys(levels), key=level_key)


# ---------------------------------------------------------------------------------------------- columns


@dataclass(frozen=True)
class Column:
    zh: str
    en: str
    kind: str = "text"  # text | money (yuan) | percent (a fraction) | percent100 (already x100) | count | points |
    # point_value (yuan per point) | number (2 decimals)


MONEY, PERCENT, PERCENT100, COUNT, POINTS, POINT_VALUE, NUMBER, TEXT = (
    "money", "percent", "percent100", "count", "points", "point_value", "number", "text")
NUMERIC_KINDS = frozenset({MONEY, PERCENT, PERCENT100, COUNT, POINTS, POINT_VALUE, NUMBER})

# Every column of the scenario outputs (hospitals, pools, summary, by_level, by_type, funds, regrouping, splits,
# families, scheme_hospitals .csv); a column that means something else in one table is in TABLE_COLUMNS.
COLUMNS: dict[str, Column] = {
    "scenario": Column("方案", "scenario"),
    "hospital_id": Column("医院编码", "hospital"),
    "name": Column("医院名称", "hospital name"),
    "pool": Column("统筹区-险种", "pool"),
    "level": Column("医院等级", "hospital level"),
    "type": Column("机构类型", "hospital type"),
    "hospital_type": Column("医院类别", "hospital type"),
    "points": Column("点数", "points", POINTS),
    "cost": Column("医疗总费用（元）", "cost (yuan)", MONEY),
    "fund_payout": Column("基金支付（元）", "fund payout (yuan)", MONEY),
    "delta": Column("变化（元）", "change (yuan)", MONEY),
    "delta_pct": Column("变化率", "change (%)", PERCENT100),
    "point_value": Column("结算点值（元/点）", "point value (yuan per point)", POINT_VALUE),
    "status": Column("点值状态", "point value status"),
    "budget_available": Column("可分配预算（元）", "budget available (yuan)", MONEY),
    "winners": Column("获益医院数", "winners", COUNT),
    "losers": Column("受损医院数", "losers", COUNT),
    "unchanged": Column("不变医院数", "unchanged", COUNT),
    "moved": Column("转移金额（元）", "money moved (yuan)", MONEY),
    "tcm_hospital_share": Column("中医医院支付占比", "TCM hospitals' share", PERCENT),
    "review_applied": Column("特例申请例数", "review: applied", COUNT),
    "review_approved": Column("特例核准例数（期望）", "review: approved (expected)", NUMBER),
    "review_amount": Column("特例核准金额（元）", "review: amount (yuan)", MONEY),
    "month": Column("月份", "month"),
    "cases": Column("病例数", "cases", COUNT),
    "claims": Column("当月基金应付（元）", "claims (yuan)", MONEY),
    "claims_to_date": Column("累计基金应付（元）", "claims to date (yuan)", MONEY),
    "budget_to_date": Column("序时预算（元）", "budget to date (yuan)", MONEY),
    "execution": Column("预算执行率", "execution", PERCENT),
    "warning_at": Column("预警线", "warning line", PERCENT),
    "alert_at": Column("警报线", "alert line", PERCENT),
    "projected_point_value": Column("预测年终点值（元/点）", "projected point value (yuan per point)", POINT_VALUE),
    "projected_balance": Column("预测年末结余（元）", "projected balance (yuan)", MONEY),
    "months_of_capacity": Column("可支付月数", "months of capacity", NUMBER),
    "from_group": Column("基准病组", "baseline group"),
    "to_group": Column("方案病组", "variant group"),
    "to_groups": Column("去向组数", "groups gone to", COUNT),
    "into": Column("去向（病例数）", "gone to (cases)"),
    "hospitals": Column("医院数", "hospitals", COUNT),
    "moved_cases": Column("移组病例数", "cases moved", COUNT),
    "points_before": Column("基准点数", "points before", POINTS),
    "points_after": Column("方案点数", "points after", POINTS),
    "value_before": Column("基准点数价值（元）", "value before (yuan)", MONEY),
    "value_after": Column("方案点数价值（元）", "value after (yuan)", MONEY),
    "family": Column("ADRG（基准）", "ADRG (baseline)"),
    "why": Column("主要原因（ADRG）", "why (ADRG)"),
    # a projection's years.csv (`dipsim project`)
    "year": Column("年度", "year"),
    "settlement_day": Column("结算日", "settlement day"),
    "budget": Column("预算（元）", "budget (yuan)", MONEY),
    "income": Column("基金收入（元）", "fund income (yuan)", MONEY),
    "balance": Column("基金结余（元）", "fund balance (yuan)", MONEY),
}
TABLE_COLUMNS: dict[str, dict[str, Column]] = {
    "funds": {"level": Column("监测等级", "monitoring level")},  # 正常 / 预警 / 警报, not a hospital level
}
# Values that are codes, by column: what people read instead (a value not listed is shown as it is).
VALUES: dict[str, dict[str, dict[str, str]]] = {
    "hospital_type": {"zh": {"TCM (中医)": "中医医院", "other": "其他医院"},
                      "en": {"TCM (中医)": "TCM hospitals", "other": "other hospitals"}},
    "status": {"zh": {"balanced": "平衡", "capped": "封顶", "floored": "保底", "fixed": "固定点值"}, "en": {}},
}
TABLE_TITLES = {
    "zh": {"hospitals": "各医院", "pools": "各统筹区点值", "summary": "各方案汇总", "by_level": "按医院等级",
           "by_type": "按医院类别", "funds": "基金运行监测", "regrouping": "移组", "splits": "拆分病组",
           "families": "ADRG", "scheme_hospitals": "分组方案变化-各医院", "rejects": "退回记录"},
    "en": {},
}


def column(name: str, table: str | None = None) -> Column:
    """What column `name` of `table` is: its labels and kind (an unknown column: its own name, text)."""
    return TABLE_COLUMNS.get(table or "", {}).get(name) or COLUMNS.get(name) or Column(name, name)


def header(name: str, table: str | None = None, lang: str = "zh") -> str:
    spec = column(name, table)
    return spec.zh if lang == "zh" else spec.en


def value_label(column_name: str, value, lang: str = "zh"):
    """The readable form of a coded value (hospital_type "other" -> 其他医院); others unchanged."""
    return VALUES.get(column_name, {}).get(lang, {}).get(value, value) if isinstance(value, str) else value


# ---------------------------------------------------------------------------------------------- variant names


def parameter_value(path: str, value, lang: str = "zh") -> str:
    """A parameter's value for a name: a share as a percent (0.05 -> 5%), true / false as 是 / 否, a table as
    "key value" pairs, a number as short as it is exact."""
    from dipsim.policy import PARAMETERS

    spec = PARAMETERS.get(path)
    yes, no, sep = ("是", "否", "、") if lang == "zh" else ("yes", "no", ", ")
    if isinstance(value, bool):
        return yes if value else no
    if isinstance(value, Mapping):
        return sep.join(f"{k} {parameter_value(path, v, lang)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return sep.join(parameter_value(path, v, lang) for v in value)
    if isinstance(value, int | float):
        if spec is not None and spec.unit.startswith("share"):
            return f"{plain(_decimal(value) * 100)}%"  # type: ignore[operator]
        if spec is not None and spec.unit == "yuan":
            return money_compact(value)
        return plain(value)
    return str(value)


def variant_name(name: str, changes: Mapping, named: bool = True, lang: str = "zh") -> str:
    """A variant's name for people: the scenario file's name when it gave one; otherwise its changes in the registry's
    Chinese labels, "中医医院加成 5%，同病同价 是" (lang "en": the name as made, `tcm_hospital_bonus=0.05, ...`)."""
    if named or lang != "zh":
        return name
    from dipsim.policy import PARAMETERS

    parts = []
    for path, value in changes.items():
        spec = PARAMETERS.get(path)
        label = spec.label if spec is not None and spec.label else path.split(".")[-1]
        parts.append(f"{label} {parameter_value(path, value, lang)}")
    return "，".join(parts) or name


def run_names(variants: Iterable, lang: str = "zh") -> dict[str, str]:
    """{run name: name for people} of the baseline (基准方案) and each variant (`scenarios.Variant`: name, changes,
    named); two variants that would read the same keep their own names."""
    names = {BASELINE: "基准方案" if lang == "zh" else BASELINE}
    made = {v.name: variant_name(v.name, v.changes, getattr(v, "named", True), lang) for v in variants}
    shown = list(made.values())
    names.update({run: text if shown.count(text) == 1 and text != names[BASELINE] else run
                  for run, text in made.items()})
    return names


# ---------------------------------------------------------------------------------------------- tables


def ordered(frame: pd.DataFrame, runs: Iterable[str] | None = None, table: str | None = None) -> pd.DataFrame:
    """`frame`'s rows with the runs in their order (`runs`: the baseline first, then the variants as the file has
    them) and hospital levels in their natural order; otherwise the rows keep their order."""
    keys = []
    if "scenario" in frame and runs is not None:
        order = {name: i for i, name in enumerate(runs)}
        keys.append(frame["scenario"].map(lambda s: order.get(s, len(order))))
    if "level" in frame and table != "funds":
        keys.append(frame["level"].map(level_key))
    if not keys:
        return frame
    sort = pd.DataFrame({f"_k{i}": k.to_numpy() for i, k in enumerate(keys)}, index=frame.index)
    index = sort.sort_values(list(sort.columns), kind="stable").index
    return frame.loc[index]


def cell_text(value, kind: str) -> str:
    """One value as text for a table, by the kind of its column."""
    if kind == MONEY:
        return yuan(value)
    if kind == PERCENT:
        return percent(value)
    if kind == PERCENT100:
        parsed = _decimal(value)
        return DASH if parsed is None else percent(parsed / 100, signed=True)
    if kind == COUNT:
        return count(value)
    if kind in (POINTS, NUMBER):
        return number(value, 2)
    if kind == POINT_VALUE:
        return number(value, 4)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def text_frame(frame: pd.DataFrame, table: str | None = None, lang: str = "zh",
               names: Mapping[str, str] | None = None) -> pd.DataFrame:
    """`frame` as text for people: every number formatted by its column's kind (no scientific notation), coded
    values and run names replaced (`names`: `run_names`), Chinese (or English) headers. Escaping is the writer's."""
    out = {}
    for name in frame.columns:
        kind = column(name, table).kind
        values = frame[name]
        if name == "scenario" and names:
            values = values.map(lambda s: names.get(s, s))
        values = values.map(lambda v, n=name: value_label(n, v, lang))
        out[header(name, table, lang)] = [cell_text(v, kind) for v in values]
    return pd.DataFrame(out, index=frame.index)
