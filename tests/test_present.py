"""Numbers and names for people (`report.present`, `report.export`, report.html): every expected string below is
written by hand.

Money reads 1,386,234,567.89 元 or 13.86 亿元, never 1.386e+09; levels come in their natural order; variants made by a
sweep are named from the registry's Chinese labels; Excel gets real numbers with a #,##0.00 format and text that
can never run as a formula.
"""

from __future__ import annotations

import csv
import json
import math
import re
from decimal import Decimal

import numpy as np
import openpyxl
import pandas as pd
import pyarrow.parquet as pq
import pytest

from dipsim.cli import main
from dipsim.paths import repo_root
from dipsim.policy import PARAMETERS
from dipsim.report import present
from dipsim.report.export import write_export_csv, write_xlsx
from dipsim.scenarios import ScenarioResults, Variant, load_scenarios

SCIENTIFIC = re.compile(r"\d[eE][+-]?\d")


# ---------------------------------------------------------------------------------------------- formatting


@pytest.mark.parametrize("value, text", [
    (0, "0.00 元"), (0.0, "0.00 元"), (-0.001, "0.00 元"), (-0.005, "-0.01 元"), (0.005, "0.01 元"),
    (9_999.995, "10,000.00 元"), (-9_999.995, "-10,000.00 元"), (1e9, "1,000,000,000.00 元"),
    (1_386_234_567.89, "1,386,234,567.89 元"), (-1_234.5, "-1,234.50 元"), (np.float64(2.675), "2.68 元"),
    (12, "12.00 元"), (None, "—"), (float("nan"), "—"), (float("inf"), "—"), (pd.NA, "—")])
def test_money(value, text):
    assert present.money(value) == text


@pytest.mark.parametrize("value, text", [
    (0, "0.00 元"), (9_999.99, "9,999.99 元"), (9_999.995, "1.00 万元"), (10_000, "1.00 万元"),
    (12_345_678.9, "1,234.57 万元"), (-12_345.678, "-1.23 万元"), (99_999_999.99, "1.00 亿元"),
    (99_999_949.99, "9,999.99 万元"), (100_000_000, "1.00 亿元"), (1e9, "10.00 亿元"),
    (1_386_234_567.89, "13.86 亿元"), (1.5e12, "15,000.00 亿元"), (-2.5e8, "-2.50 亿元"), (None, "—"),
    (float("nan"), "—")])
def test_money_compact(value, text):
    assert present.money_compact(value) == text


def test_percent_and_plain_numbers():
    assert present.percent(0.12345) == "12.35%"  # 12.345 rounds half up
    assert present.percent(0.12345, signed=True) == "+12.35%"
    assert present.percent(-0.031, signed=True) == "-3.10%"
    assert present.percent(0, signed=True) == "0.00%"
    assert present.percent(-0.000001, signed=True) == "0.00%"  # no "-0.00%" nor "+0.00%"
    assert present.percent(float("nan")) == "—"
    assert present.percent(12.5) == "1,250.00%"
    assert present.count(1_234_567) == "1,234,567"
    assert present.number(1e21, 2) == "1,000,000,000,000,000,000,000.00"
    assert present.plain(1e-7) == "0.0000001" and present.plain(0.05) == "0.05" and present.plain(100.0) == "100"
    assert present.yuan(1e15) == "1,000,000,000,000,000.00"


def test_hospital_levels_come_in_their_natural_order_with_unknown_levels_after():
    given = ["一级", "社区卫生服务中心", "三级乙等", None, "二级", "三级甲等", "", "二级甲等", "三级", "A级",
             "二级乙等", "三级甲等", float("nan"), "二甲"]
    assert present.sort_levels(given)[:11] == ["三级甲等", "三级乙等", "三级", "二级甲等", "二甲", "二级乙等",
                                               "二级", "一级", "A级", "社区卫生服务中心", None]
    assert len(present.sort_levels(given)) == 13  # None, "" and NaN last, each once
    assert all(present.level_key(x)[0] == 2 for x in present.sort_levels(given)[10:])


# ---------------------------------------------------------------------------------------------- names


def test_every_parameter_has_a_chinese_label():
    unlabelled = [path for path, p in PARAMETERS.items() if not re.search(r"[\u4e00-\u9fff]", p.label)]
    assert not unlabelled
    labels = [p.label for p in PARAMETERS.values()]
    assert len(set(labels)) == len(labels), "two parameters with one label"


def test_sweep_variants_are_named_in_chinese_and_named_variants_keep_their_names():
    tcm = load_scenarios(repo_root() / "scenarios" / "tcm_weighting.toml")
    names = present.run_names(tcm.variants)
    assert names["baseline"] == "基准方案"
    assert names["tcm_hospital_bonus=0.05, same_price=True"] == "中医医院加成 5%，同病同价 是"
    assert names["tcm_hospital_bonus=0.15, same_price=False"] == "中医医院加成 15%，同病同价 否"
    assert names["tcm_hospital_bonus=0.0, same_price=True"] == "中医医院加成 0%，同病同价 是"
    budget = present.run_names(load_scenarios(repo_root() / "scenarios" / "budget_growth.toml").variants)
    assert budget["scale=1.03"] == "预算总额倍数 1.03" and budget["scale=1.1"] == "预算总额倍数 1.1"
    review = present.run_names(load_scenarios(repo_root() / "scenarios" / "special_case_review.toml").variants)
    assert review["quota 1‰"] == "quota 1‰"  # the file's own name
    assert review["in_effect=True, approval_rate=0.5"] == "特例单议 是，特例单议通过率 50%"
    assert present.run_names(tcm.variants, "en")["tcm_hospital_bonus=0.05, same_price=True"] == (
        "tcm_hospital_bonus=0.05, same_price=True")
    # a table value and a budget in yuan
    assert present.variant_name("x", {"coefficient.level": {"三级甲等": 1.0, "二级": 0.9},
                                      "budget.total": {"P": 123_456_789.0}}, named=False) == (
        "等级系数 三级甲等 1、二级 0.9，年度预算总额 P 1.23 亿元")
    # two variants that would read the same keep their own names
    same = present.run_names([Variant("a", {"budget.scale": 1.0}, named=False),
                              Variant("b", {"budget.scale": 1.0}, named=False)])
    assert same == {"baseline": "基准方案", "a": "a", "b": "b"}


def test_columns_and_values_have_chinese_labels():
    assert present.header("hospital_type") == "医院类别"
    assert present.value_label("hospital_type", "other") == "其他医院"
    assert present.value_label("hospital_type", "TCM (中医)") == "中医医院"
    assert present.header("level", "funds") == "监测等级" and present.header("level", "hospitals") == "医院等级"
    assert present.header("fund_payout", lang="en") == "fund payout (yuan)"


# ---------------------------------------------------------------------------------------------- the report

BIG = 1_386_234_567.89
POOL = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def results():
    """Three runs over five hospitals with city-sized sums (about 1.4 billion yuan each), a pool named with HTML,
    one level the natural order does not know."""
    levels = ["一级", "三级乙等", "三级甲等", "二级", "社区"]
    kinds = ["综合", "综合", "中医", "专科", "综合"]
    ids = ["H1", "H2", "H3", "=1+1", "H5"]
    runs = [("baseline", [0.0] * 5), ("coefficient.tcm_hospital_bonus=0.05", [-1e7, -2e7, 4.5e7, -1e7, -0.5e7]),
            ("大幅<加成>", [-3e7, -2e7, 9e7, -3e7, -1e7])]
    rows = []
    for scenario, deltas in runs:
        for h, delta in enumerate(deltas):
            base = BIG / 5
            rows.append({"scenario": scenario, "hospital_id": ids[h], "pool": POOL, "level": levels[h],
                         "type": kinds[h], "points": 123_456_789.1234, "cost": 2 * base,
                         "fund_payout": round(base + delta, 2), "delta": delta,
                         "delta_pct": delta / base * 100})
    hospitals = pd.DataFrame(rows)
    total = hospitals.groupby("scenario", sort=False)["fund_payout"].sum()
    summary = pd.DataFrame({"scenario": [r for r, _ in runs], "winners": [0, 1, 1], "losers": [0, 4, 4],
                            "unchanged": [5, 0, 0], "moved": [0.0, 4.5e7, 9e7],
                            "fund_payout": [total[r] for r, _ in runs], "tcm_hospital_share": [0.2, 0.203, 0.206],
                            "review_applied": [0, 0, 0], "review_approved": [0.0] * 3, "review_amount": [0.0] * 3})
    pools = pd.DataFrame({"scenario": [r for r, _ in runs], "pool": POOL, "point_value": [12.3456, 12.3, 12.2],
                          "status": "balanced", "fund_payout": [BIG] * 3, "budget_available": [BIG] * 3})
    by_level = hospitals.groupby(["scenario", "level"], as_index=False)[["fund_payout", "delta"]].sum()
    by_type = hospitals.assign(hospital_type=np.where(hospitals["type"] == "中医", "TCM (中医)", "other")).groupby(
        ["scenario", "hospital_type"], as_index=False)[["fund_payout", "delta"]].sum()
    variants = [Variant("coefficient.tcm_hospital_bonus=0.05", {"coefficient.tcm_hospital_bonus": 0.05},
                        named=False), Variant("大幅<加成>", {"coefficient.tcm_hospital_bonus": 0.1})]
    return ScenarioResults(hospitals=hospitals, pools=pools, summary=summary, by_level=by_level, by_type=by_type,
                           variants=variants)


def _text_of(page: str) -> str:
    """The page without its embedded images (base64 is random letters, 'e+' among them)."""
    return re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page)


def test_the_report_shows_yuan_with_separators_and_never_scientific_notation(results, tmp_path):
    from dipsim.report.html import write_report

    page = _text_of(write_report(results, tmp_path / "report.html", "大额", "zh").read_text(encoding="utf-8"))
    assert not SCIENTIFIC.search(page), SCIENTIFIC.search(page)
    assert "<td class='n'>1,386,234,567.89</td>" in page  # pools: budget available
    assert "<td class='n'>12.3456</td>" in page  # a point value, 4 decimals
    assert "<td class='n'>20.30%</td>" in page  # the TCM share
    assert "<td class='t'>中医医院加成 5%</td>" in page and "<td class='t'>基准方案</td>" in page
    assert "大幅&lt;加成&gt;" in page and "大幅<加成>" not in page  # the file's name, escaped
    assert "<td class='t'>&lt;script&gt;alert(1)&lt;/script&gt;</td>" in page and "<script" not in page
    assert "<th>基金支付（元）</th>" in page and "<th>医院类别</th>" in page and "其他医院" in page
    assert "hospital_type" not in page and ">other<" not in page
    by_level = page[page.index("<h2>按医院等级</h2>"):page.index("<h2>中医医院与其他医院</h2>")]
    first = by_level[:by_level.index("中医医院加成 5%")]  # the baseline's rows
    assert [first.index(level) for level in ("三级甲等", "三级乙等", "二级", "一级", "社区")] == sorted(
        first.index(level) for level in ("三级甲等", "三级乙等", "二级", "一级", "社区"))
    english = _text_of(write_report(results, tmp_path / "en.html", "big", "en").read_text(encoding="utf-8"))
    assert not SCIENTIFIC.search(english) and "<th>fund payout (yuan)</th>" in english


def test_no_axis_of_any_figure_shows_scientific_notation(results, monkeypatch):
    import dipsim.report.plots as plots

    texts = []
    png = plots._png

    def record(fig):
        fig.canvas.draw()
        for ax in fig.axes:
            for axis in (ax.xaxis, ax.yaxis):
                texts.append(axis.get_offset_text().get_text())
                texts.extend(label.get_text() for label in axis.get_ticklabels())
            if ax.get_legend() is not None:
                texts.extend(t.get_text() for t in ax.get_legend().get_texts())
        return png(fig)

    monkeypatch.setattr(plots, "_png", record)
    plots.figures(results, "zh")
    money = ["fund_payout", "delta", "cost"]  # and sums 10,000 times larger: matplotlib would write 1e7 above the axis
    huge = ScenarioResults(**{**results.__dict__, "hospitals": results.hospitals.assign(
        **{c: results.hospitals[c] * 10_000 for c in money})})
    plots.figures(huge, "zh")
    shown = [t for t in texts if t]
    assert shown and not [t for t in shown if SCIENTIFIC.search(t)]
    assert "中医医院加成 5%" in shown and "三级甲等" in shown  # variant names and levels on the axes
    assert any("," in t for t in shown)  # thousands separators on a money axis


# ---------------------------------------------------------------------------------------------- Excel and CSV


def test_xlsx_has_chinese_headers_real_numbers_and_text_that_never_runs(tmp_path):
    frame = pd.DataFrame({
        "scenario": ["baseline", "s1", "s1", "s1"],
        "hospital_id": ["=1+1", "<script>alert(1)</script>", "@SUM(A1)", "-5\x01"],
        "level": ["一级", "三级甲等", "#N/A", None],
        "fund_payout": [1_386_234_567.89, -0.5, float("nan"), 9_999.99],
        "delta_pct": [12.5, -3.1, None, 0.0],
        "winners": [3, 0, 1, 2]})
    path = write_xlsx(frame, tmp_path / "t.xlsx", "hospitals", names={"baseline": "基准方案", "s1": "方案一"})
    sheet = openpyxl.load_workbook(path).active
    assert sheet.title == "各医院" and sheet.freeze_panes == "A2"
    assert [c.value for c in sheet[1]] == ["方案", "医院编码", "医院等级", "基金支付（元）", "变化率", "获益医院数"]
    ids = [sheet.cell(row=r, column=2) for r in range(2, 6)]
    assert [c.value for c in ids] == ["=1+1", "<script>alert(1)</script>", "@SUM(A1)", "-5\ufffd"]
    assert {c.data_type for c in ids} == {"s"}  # text, not a formula
    assert sheet.cell(row=4, column=3).value == "#N/A" and sheet.cell(row=4, column=3).data_type == "s"
    assert [sheet.cell(row=r, column=1).value for r in range(2, 6)] == ["基准方案", "方案一", "方案一", "方案一"]
    money = [sheet.cell(row=r, column=4) for r in range(2, 6)]
    assert [c.value for c in money] == [1_386_234_567.89, -0.5, None, 9_999.99]
    assert {c.number_format for c in money} == {"#,##0.00"}
    pct = [sheet.cell(row=r, column=5) for r in range(2, 6)]
    assert [c.value for c in pct] == [0.125, -0.031, None, 0] and pct[0].number_format == "0.00%"
    assert sheet.cell(row=2, column=6).value == 3 and sheet.cell(row=2, column=6).number_format == "#,##0"
    assert 8 <= sheet.column_dimensions["D"].width <= 60


def test_export_csv_has_chinese_headers_a_bom_and_neutralised_formulas(tmp_path):
    frame = pd.DataFrame({"hospital_type": ["other", "TCM (中医)"], "hospital_id": ["=1+1", "H2"],
                          "fund_payout": [1_386_234_567.891, 2.0], "tcm_hospital_share": [0.25, None]})
    path = write_export_csv(frame, tmp_path / "t.csv")
    raw = path.read_bytes()
    assert raw.startswith("\ufeff".encode())
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["医院类别", "医院编码", "基金支付（元）", "中医医院支付占比（%）"]
    assert rows[1] == ["其他医院", "'=1+1", "1386234567.89", "25"]
    assert rows[2] == ["中医医院", "H2", "2", ""]


@pytest.fixture(scope="module")
def scenario_run(tmp_path_factory):
    """`dipsim scenarios run` of the TCM sweep on a small synthetic region (DIP, budgets 60% of cost)."""
    from dipsim.synth import synthesize_region

    root = tmp_path_factory.mktemp("present")
    synthesize_region(root / "synth", cases=1_200, hospitals=6, seed=5)
    assert main(["catalog", "build", str(root / "synth" / "cases"), "-o", str(root / "cat"), "-q"]) == 0
    out = root / "out"
    assert main(["scenarios", "run", str(repo_root() / "scenarios" / "tcm_weighting.toml"), "--cases",
                 str(root / "synth" / "cases"), "--hospitals", str(root / "synth" / "hospitals.parquet"),
                 "--catalog", str(root / "cat"), "--budget-share", "0.6", "-o", str(out), "-q"]) == 0
    return root, out


def test_scenarios_run_writes_hospitals_xlsx_equal_to_the_csv_to_the_fen(scenario_run):
    root, out = scenario_run
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert "hospitals.xlsx" in manifest["outputs"]
    with open(out / "hospitals.csv", encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    sheet = openpyxl.load_workbook(out / "hospitals.xlsx").active
    header = [c.value for c in sheet[1]]
    assert header == ["方案", "医院编码", "统筹区-险种", "医院等级", "机构类型", "点数", "医疗总费用（元）",
                      "基金支付（元）", "变化（元）", "变化率"]
    names = present.run_names(load_scenarios(repo_root() / "scenarios" / "tcm_weighting.toml").variants)
    got = {}
    for cells in sheet.iter_rows(min_row=2):
        got[(cells[0].value, cells[1].value, cells[2].value)] = cells
        assert [c.number_format for c in cells[6:9]] == ["#,##0.00"] * 3 and cells[9].number_format == "0.00%"
    assert len(got) == len(rows) == 9 * 12  # 9 runs x 6 hospitals x 2 pools
    for row in rows:
        cells = got[(names[row["scenario"]], row["hospital_id"], row["pool"])]
        for column, cell in (("cost", cells[6]), ("fund_payout", cells[7]), ("delta", cells[8])):
            assert isinstance(cell.value, int | float), (column, cell.value)
            assert round(Decimal(repr(float(cell.value))) * 100) == round(Decimal(row[column]) * 100), (row, column)
        assert cells[3].value == row["level"] and cells[4].value == row["type"]
        assert math.isclose(cells[9].value * 100, float(row["delta_pct"]), rel_tol=1e-12, abs_tol=1e-12)
    levels = [c.value for c in sheet["D"][1:13]]  # the baseline's rows: levels in their natural order
    assert levels == sorted(levels, key=present.level_key)
    assert [c.value for c in sheet["A"][1:3]] == ["基准方案", "基准方案"]
    hospitals = pq.read_table(root / "synth" / "hospitals.parquet").to_pandas()
    assert set(c.value for c in sheet["B"][1:]) == set(hospitals["hospital_id"])


def test_scenarios_run_report_has_no_scientific_notation(scenario_run):
    _, out = scenario_run
    page = _text_of((out / "report.html").read_text(encoding="utf-8"))
    assert not SCIENTIFIC.search(page), SCIENTIFIC.search(page)
    assert "中医医院加成 15%，同病同价 否" in page and "tcm_hospital_bonus=" not in page
    assert "<script" not in page and "src='http" not in page and "<link" not in page
