"""Case points by hand: outliers, coefficients, bonuses that do not stack, TCM same price, auxiliary factors; and
the settlement of a small region of three hospitals and ten cases to the fen."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pyarrow as pa
import pytest

from dipsim.budget import SettlementError, settle
from dipsim.io.errors import InputError
from dipsim.policy import Policy
from dipsim.pricing import case_points

BASE = Policy(values={})
HOSPITALS = pa.table({"hospital_id": ["H1", "H2", "H3"], "level": ["三级甲等", "二级", "一级"],
                      "type": ["综合", "中医", "综合"], "coefficient_override": [None, None, 0.8]})


@pytest.mark.parametrize("cost, factor, kind", [
    (400, 0.4, "low"),  # r = 0.4 < 0.5: paid its ratio
    (500, 1.0, "normal"), (2_000, 1.0, "normal"),
    (3_000, 2.0, "high"),  # r = 3: (3 - 2) + 1 = 2, "a case at 3x the group mean gets factor 2"
    (6_000, 5.0, "extreme"),  # r = 6 > 5: factor 5 and flagged for special-case review
])
def test_dip_outlier_factors(cost, factor, kind):
    out = case_points(np.array([100.0]), np.array([float(cost)]), np.array([1_000.0]), np.array(["H1"]), HOSPITALS,
                      BASE)
    assert (out["outlier_factor"][0], out["outlier"][0]) == (pytest.approx(factor), kind)


def test_a_tcm_group_case_is_not_cut_as_a_low_outlier():
    out = case_points(np.full(2, 100.0), np.array([300.0, 300.0]), np.array([1_000.0, 1_000.0]),
                      np.array(["H1", "H1"]), HOSPITALS, BASE, tcm_group_case=np.array([True, False]))
    assert out["outlier_factor"].tolist() == [1.0, 0.3] and out["outlier"].tolist() == ["normal", "low"]
    off = BASE.overlay({"tcm.same_price": False})  # 同病同价 off: the TCM group's case is cut like any other
    out = case_points(np.full(2, 100.0), np.array([300.0, 300.0]), np.array([1_000.0, 1_000.0]),
                      np.array(["H1", "H1"]), HOSPITALS, off, tcm_group_case=np.array([True, False]))
    assert out["outlier_factor"].tolist() == [0.3, 0.3]


def test_coefficients_levels_overrides_and_bonuses_that_do_not_stack():
    policy = BASE.overlay({"coefficient.level": {"三级甲等": 1.0, "二级": 0.889, "一级": 0.677},
                           "coefficient.hospital": {"H1": 1.05}, "coefficient.tcm_hospital_bonus": 0.10,
                           "tcm.case_bonus": 0.05})
    out = case_points(np.array([100.0, 100.0, 100.0, 100.0]), np.full(4, 1_000.0), np.full(4, 1_000.0),
                      np.array(["H1", "H2", "H2", "H3"]), HOSPITALS, policy,
                      tcm_treated=np.array([True, True, False, False]), aux_factor=np.array([1.0, 1.0, 1.0, 1.2]))
    assert out["coefficient"].tolist() == [1.05, 0.889, 0.889, 0.8]  # H1 per hospital; H3 the table override
    # H1's TCM-treated case: case bonus 5%; H2 (a TCM hospital): 10% whether or not the case is TCM-treated
    assert out["bonus"].tolist() == [0.05, 0.10, 0.10, 0.0]
    assert out["case_points"] == pytest.approx([100 * 1.05 * 1.05, 100 * 0.889 * 1.1, 100 * 0.889 * 1.1,
                                                100 * 0.8 * 1.2])
    with pytest.raises(ValueError, match="not in the hospitals table"):
        case_points(np.array([1.0]), np.array([1.0]), np.array([1.0]), np.array(["H9"]), HOSPITALS, policy)


def test_a_small_region_settles_to_the_fen_by_hand():
    """Ten cases, group points 100 each with standard cost 1,000; costs and patient payments below. Coefficients
    1.0 / 0.889 / 0.8 (H3's override). Outliers: case 3 at r = 0.3 -> 0.3; case 7 at r = 3 -> 2.
    Points: H1 = 100 + 100 + 30 = 230; H2 = 4 x 88.9 = 355.6; H3 = (100 + 200 + 100) x 0.8 = 320. Total 905.6.
    Budget 9,056 yuan, patients paid 0: V = 10 yuan a point; payouts 2,300 / 3,556 / 3,200."""
    policy = BASE.overlay({"coefficient.level": {"三级甲等": 1.0, "二级": 0.889}, "budget.total": {"P": 9_056.0}})
    hospital = np.array(["H1", "H1", "H1", "H2", "H2", "H2", "H2", "H3", "H3", "H3"])
    cost = np.array([1_000, 1_200, 300, 900, 1_000, 1_100, 1_000, 1_000, 3_000, 800], dtype=float)
    priced = case_points(np.full(10, 100.0), cost, np.full(10, 1_000.0), hospital, HOSPITALS, policy)
    assert priced["outlier_factor"].tolist() == [1, 1, 0.3, 1, 1, 1, 1, 1, 2, 1]
    hospitals, pools = settle(hospital, np.full(10, "P"), priced["case_points"], cost, np.zeros(10), policy)
    rows = {r["hospital_id"]: r for r in hospitals.to_pylist()}
    assert {h: r["points"] for h, r in rows.items()} == {"H1": 230.0, "H2": 355.6, "H3": 320.0}
    assert pools.to_pylist()[0]["point_value"] == pytest.approx(10.0)
    assert [rows[h]["fund_payout"] for h in ("H1", "H2", "H3")] == [Decimal("2300.00"), Decimal("3556.00"),
                                                                   Decimal("3200.00")]
    assert sum(r["fund_payout"] for r in rows.values()) == Decimal("9056.00")
    assert rows["H3"]["payment_ratio"] == pytest.approx(3_200 / 4_800)


def test_settling_a_pool_without_a_budget_names_it():
    with pytest.raises(SettlementError, match=r"no budget \(budget.total\) for pool\(s\) \['Q'\]"):
        settle(np.array(["H1"]), np.array(["Q"]), np.array([1.0]), np.array([1.0]), np.array([0.0]), BASE)


def test_settle_command_writes_hospitals_pools_and_cases(tmp_path):
    import json

    import pandas as pd

    from dipsim.cli import main
    from dipsim.paths import repo_root

    region = tmp_path / "region"
    assert main(["synth", "--cases", "3000", "--hospitals", "10", "--seed", "9", "-o", str(region), "-q"]) == 0
    assert main(["catalog", "build", str(region / "cases"), "-o", str(tmp_path / "cat"), "-q"]) == 0
    out = tmp_path / "settle"
    args = ["settle", str(region / "cases"), "--policy", str(repo_root() / "scenarios" / "baseline.toml"),
            "--hospitals", str(region / "hospitals.parquet"), "--catalog", str(tmp_path / "cat"), "-o", str(out),
            "--budget-share", "0.6", "--set", "bands.in_effect=true", "-q"]
    assert main(args) == 0
    hospitals = pd.read_csv(out / "hospitals.csv", encoding="utf-8-sig", dtype={"fund_payout": str})
    pools = pd.read_csv(out / "pools.csv", encoding="utf-8-sig", dtype={"budget_available": str})
    for pool, rows in hospitals.groupby("pool"):
        fen = sum(int(v.replace(".", "")) for v in rows["fund_payout"])  # exact: sum the fen as integers
        want = pools.loc[pools["pool"] == pool, "budget_available"].iloc[0]
        assert fen == int(want.replace(".", "")), pool
    assert hospitals["cases"].sum() == 3000
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["overlays"][0] == {"bands.in_effect": True} and len(manifest["policy_sha256"]) == 64
    assert main([*args[:-3], "--set", "outlier.high_ration=1.5", "-q"]) == 1  # a typo in a parameter: exit 1


def test_the_year_cycle_prepayment_deposit_and_clearing_by_hand():
    """The region above (V = 10 = the budget point value, no bands), over two months, prepaying 90%, withholding a
    5% quality deposit released by score: >= 90 all, >= 80 80%, below nothing.
    H1 (score 95): months 200 and 30 points -> due 2,000 + 300; prepaid 2,070; deposit 115, all released;
       clearing 2,300 - 2,070 - 115 + 115 = 230.
    H2 (score 85): 177.8 points a month -> due 1,778 each; prepaid 2 x 1,600.20; deposit 177.80, 142.24 released;
       clearing 3,556 - 3,200.40 - 177.80 + 142.24 = 320.04.
    H3 (score 70): due 800 and 2,400; prepaid 2,880; deposit 160, none released; clearing 160."""
    policy = BASE.overlay({"coefficient.level": {"三级甲等": 1.0, "二级": 0.889}, "budget.total": {"P": 9_056.0},
                           "cycle.prepay_share": 0.9, "cycle.quality_deposit_share": 0.05,
                           "cycle.quality_schedule": [[90, 1.0], [80, 0.8], [0, 0.0]]})
    hospital = np.array(["H1", "H1", "H1", "H2", "H2", "H2", "H2", "H3", "H3", "H3"])
    month = np.array([1, 1, 2, 1, 1, 2, 2, 1, 2, 2])
    cost = np.array([1_000, 1_200, 300, 900, 1_000, 1_100, 1_000, 1_000, 3_000, 800], dtype=float)
    priced = case_points(np.full(10, 100.0), cost, np.full(10, 1_000.0), hospital, HOSPITALS, policy)
    hospitals, _ = settle(hospital, np.full(10, "P"), priced["case_points"], cost, np.zeros(10), policy,
                          month=month, quality={"H1": 95, "H2": 85, "H3": 70})
    rows = {r["hospital_id"]: r for r in hospitals.to_pylist()}
    got = {h: tuple(str(rows[h][k]) for k in ("prepaid", "deposit", "deposit_released", "clearing"))
           for h in rows}
    assert got == {"H1": ("2070.00", "115.00", "115.00", "230.00"),
                   "H2": ("3200.40", "177.80", "142.24", "320.04"),
                   "H3": ("2880.00", "160.00", "0.00", "160.00")}


def test_explain_a_hospital_from_a_settle_folder(tmp_path, capsys):
    from dipsim.cli import main
    from dipsim.paths import repo_root

    region = tmp_path / "region"
    assert main(["synth", "--cases", "2000", "--hospitals", "6", "--seed", "4", "-o", str(region), "-q"]) == 0
    out = tmp_path / "settle"
    assert main(["settle", str(region / "cases"), "--policy", str(repo_root() / "scenarios" / "baseline_drg.toml"),
                 "--hospitals", str(region / "hospitals.parquet"), "--budget-share", "0.6", "-o", str(out),
                 "-q"]) == 0
    capsys.readouterr()
    assert main(["explain", str(out), "--hospital", "H0001"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("hospital H0001 under policy baseline-drg")
    assert "fund payout = payment - patient paid" in text and "clearing = " in text
    assert main(["explain", str(out), "--hospital", "H9999"]) == 1
    assert main(["explain", str(out)]) == 1  # neither --case-id nor --hospital


def test_high_outlier_ratio_by_hospital_level():
    """DRG practice: above 3x for a tertiary hospital, 2x for a secondary one. A case at r = 2.5: normal at H1
    (三级甲等, threshold 3), high at H2 (二级, 2: factor 1.5)."""
    policy = BASE.overlay({"outlier.high_ratio_by_level": {"三级甲等": 3.0, "二级": 2.0},
                           "outlier.low_ratio_by_level": {"二级": 0.4}})
    out = case_points(np.array([100.0, 100.0]), np.array([2_500.0, 2_500.0]), np.array([1_000.0, 1_000.0]),
                      np.array(["H1", "H2"]), HOSPITALS, policy)
    assert out["outlier"].tolist() == ["normal", "high"] and out["outlier_factor"].tolist() == [1.0, 1.5]
    # r = 0.45: low at H1 (default 0.5), normal at H2 (its level's 0.4)
    out = case_points(np.array([100.0, 100.0]), np.array([450.0, 450.0]), np.array([1_000.0, 1_000.0]),
                      np.array(["H1", "H2"]), HOSPITALS, policy)
    assert out["outlier"].tolist() == ["low", "normal"]


def test_history_coefficients_blend_the_hospital_with_its_level():
    """Four hospitals: H1 and H4 are both 三级甲等. H1 spends 1,200 where its groups' standard is 1,000 (ratio 1.2),
    H4 800 of 1,000 (0.8): their level's ratio is 2,000 / 2,000 = 1.0. Blend 0.5: H1 = 0.5 x 1.2 + 0.5 x 1.0 = 1.1,
    H4 = 0.9. H2 alone in 二级 at 1.0: 1.0. H3 has a per-hospital value 0.95: kept."""
    hospitals = pa.table({"hospital_id": ["H1", "H2", "H3", "H4"], "level": ["三级甲等", "二级", "一级", "三级甲等"],
                          "type": ["综合"] * 4, "coefficient_override": [None] * 4})
    policy = BASE.overlay({"coefficient.mode": "history", "coefficient.history_blend": 0.5,
                           "coefficient.hospital": {"H3": 0.95}})
    out = case_points(np.full(4, 100.0), np.array([1_200.0, 1_000.0, 500.0, 800.0]), np.full(4, 1_000.0),
                      np.array(["H1", "H2", "H3", "H4"]), hospitals, policy)
    assert out["coefficient"] == pytest.approx([1.1, 1.0, 0.95, 0.9])
    with pytest.raises(ValueError, match="not in the hospitals table"):  # checked in history mode too
        case_points(np.array([1.0]), np.array([1.0]), np.array([1.0]), np.array(["H9"]), hospitals, policy)


def test_prepayment_uses_the_published_budget_point_value():
    """The cycle test's region with a budget point value of 8 published for pool P: H3's months have 80 and 240
    points -> due 640 + 1,920; prepaid 90% = 2,304 (10 yuan a point gave 2,880)."""
    policy = BASE.overlay({"coefficient.level": {"三级甲等": 1.0, "二级": 0.889}, "budget.total": {"P": 9_056.0},
                           "cycle.prepay_share": 0.9, "budget.budget_point_value": {"P": 8.0}})
    hospital = np.array(["H1", "H1", "H1", "H2", "H2", "H2", "H2", "H3", "H3", "H3"])
    month = np.array([1, 1, 2, 1, 1, 2, 2, 1, 2, 2])
    cost = np.array([1_000, 1_200, 300, 900, 1_000, 1_100, 1_000, 1_000, 3_000, 800], dtype=float)
    priced = case_points(np.full(10, 100.0), cost, np.full(10, 1_000.0), hospital, HOSPITALS, policy)
    hospitals, pools = settle(hospital, np.full(10, "P"), priced["case_points"], cost, np.zeros(10), policy,
                              month=month)
    rows = {r["hospital_id"]: r for r in hospitals.to_pylist()}
    assert str(rows["H3"]["prepaid"]) == "2304.00" and pools.to_pylist()[0]["budget_point_value"] == 8.0


def test_outliers_paid_by_item_come_out_of_the_budget_first():
    """H1 has a case at r = 3 paid its 3,000 by item; the other four cases have 100 points each (coefficient 1).
    Budget 10,000: 3,000 by item, 7,000 over 400 points -> V = 17.5; H1 = 1,750 + 3,000, H2 = 3,500, H3 = 1,750."""
    policy = BASE.overlay({"outlier.pay_by_item": "high", "budget.total": {"P": 10_000.0},
                           "coefficient.hospital": {"H2": 1.0, "H3": 1.0}})
    hospital = np.array(["H1", "H1", "H2", "H2", "H3"])
    cost = np.array([3_000.0, 1_000.0, 1_000.0, 1_000.0, 1_000.0])
    priced = case_points(np.full(5, 100.0), cost, np.full(5, 1_000.0), hospital, HOSPITALS, policy)
    assert priced["paid_by_item"].tolist() == [True, False, False, False, False]
    assert priced["case_points"].tolist() == [0.0, 100.0, 100.0, 100.0, 100.0]
    hospitals, pools = settle(hospital, np.full(5, "P"), priced["case_points"], cost, np.zeros(5), policy,
                              paid_by_item=priced["paid_by_item"])
    assert pools.to_pylist()[0]["point_value"] == pytest.approx(17.5)
    assert [str(r["fund_payout"]) for r in hospitals.to_pylist()] == ["4750.00", "3500.00", "1750.00"]


# ---------------------------------------------------------------- what pricing reads of a hospital (issue 15, item 5)

MEIZHOU = {"三级甲等": 1.0, "二级": 0.889, "一级": 0.677}


def test_a_hospital_whose_level_the_coefficient_table_does_not_list_stops_pricing_naming_it_and_its_level():
    """A hospitals table with '三甲' (an abbreviation) and an empty level: both used to get 1.0, the 三甲 rate (a 一级
    hospital's cases paid 1 / 0.677 = +48%). Now an error naming each hospital and its level."""
    hospitals = pa.table({"hospital_id": ["H1", "H2", "H3"], "level": ["三甲", None, "一级"],
                          "type": ["综合", "综合", "综合"], "coefficient_override": [None, None, None]})
    policy = BASE.overlay({"coefficient.level": MEIZHOU})
    with pytest.raises(InputError) as error:
        case_points(np.full(3, 100.0), np.full(3, 1_000.0), np.full(3, 1_000.0), np.array(["H1", "H2", "H3"]),
                    hospitals, policy)
    assert str(error.value).startswith("hospital(s) H1 (level '三甲'), H2 (no level): the level is not in "
                                       "coefficient.level (三级甲等, 二级, 一级), so the coefficient is unknown")
    # the same hospitals with a coefficient of their own need no level for it: 0.95 from the policy for H1, the
    # table's 0.8 for H2; H3 keeps its level's 0.677
    own = hospitals.set_column(3, "coefficient_override", pa.array([None, 0.8, None], pa.float64()))
    out = case_points(np.full(3, 100.0), np.full(3, 1_000.0), np.full(3, 1_000.0), np.array(["H1", "H2", "H3"]),
                      own, policy.overlay({"coefficient.hospital": {"H1": 0.95}}))
    assert out["case_points"] == pytest.approx([95.0, 80.0, 67.7])


def test_a_hospital_of_the_table_without_cases_is_not_checked():
    """H3's level is unknown but it has no case here: nothing of it is priced, so nothing stops."""
    hospitals = pa.table({"hospital_id": ["H1", "H3"], "level": ["三级甲等", "三乙"], "type": ["综合", "综合"],
                          "coefficient_override": [None, None]})
    out = case_points(np.array([100.0]), np.array([1_000.0]), np.array([1_000.0]), np.array(["H1"]), hospitals,
                      BASE.overlay({"coefficient.level": MEIZHOU}))
    assert out["case_points"].tolist() == [100.0]


def test_without_a_level_table_every_hospital_is_1_and_no_level_is_needed():
    """The default policy has no coefficient by level: every hospital 1.0 whatever its level, as documented."""
    hospitals = pa.table({"hospital_id": ["H1", "H2"], "level": ["三甲", None], "type": ["综合", "综合"]})
    out = case_points(np.full(2, 100.0), np.full(2, 1_000.0), np.full(2, 1_000.0), np.array(["H1", "H2"]),
                      hospitals, BASE)
    assert out["coefficient"].tolist() == [1.0, 1.0]


def test_an_empty_level_where_outlier_ratios_go_by_level_is_an_error_but_an_unlisted_level_uses_the_plain_ratio():
    """DRG practice: high outliers above 3x at tertiary hospitals. H2's level is not in the by-level table: it uses
    outlier.high_ratio (2), as documented, so a case at r = 2.5 is high there (factor 1.5). H3 has no level at all:
    which ratio applies cannot be known."""
    hospitals = pa.table({"hospital_id": ["H1", "H2", "H3"], "level": ["三级甲等", "二级", ""],
                          "type": ["综合"] * 3, "coefficient_override": [None] * 3})
    policy = BASE.overlay({"outlier.high_ratio_by_level": {"三级甲等": 3.0}})
    out = case_points(np.full(2, 100.0), np.full(2, 2_500.0), np.full(2, 1_000.0), np.array(["H1", "H2"]),
                      hospitals, policy)
    assert out["outlier_factor"].tolist() == [1.0, 1.5]
    with pytest.raises(InputError, match=r"hospital\(s\) H3: no level in the hospitals table, which "
                                         r"outlier.high_ratio_by_level read\(s\) by level"):
        case_points(np.full(1, 100.0), np.full(1, 2_500.0), np.full(1, 1_000.0), np.array(["H3"]), hospitals, policy)


def test_history_coefficients_need_the_level_unless_the_hospital_has_its_own():
    hospitals = pa.table({"hospital_id": ["H1", "H2"], "level": [None, None], "type": ["综合"] * 2,
                          "coefficient_override": [None, None]})
    policy = BASE.overlay({"coefficient.mode": "history", "coefficient.hospital": {"H2": 0.9}})
    with pytest.raises(InputError, match=r"^hospital\(s\) H1: no level in the hospitals table, which "
                                         r"coefficient.mode = history read"):
        case_points(np.full(2, 100.0), np.full(2, 1_000.0), np.full(2, 1_000.0), np.array(["H1", "H2"]),
                    hospitals, policy)
    out = case_points(np.full(1, 100.0), np.full(1, 1_000.0), np.full(1, 1_000.0), np.array(["H2"]), hospitals,
                      policy)
    assert out["coefficient"].tolist() == [0.9]


def test_a_tcm_bonus_needs_the_hospitals_type():
    """'中医院' is not a type dipsim knows: with a 10% TCM hospital bonus the hospital would silently miss it."""
    hospitals = pa.table({"hospital_id": ["H1"], "level": ["二级"], "type": ["中医院"]})
    with pytest.raises(InputError, match=r"H1 \(type '中医院'\): the type is not one of 综合, 中医, 专科"):
        case_points(np.array([100.0]), np.array([1_000.0]), np.array([1_000.0]), np.array(["H1"]), hospitals,
                    BASE.overlay({"coefficient.tcm_hospital_bonus": 0.1}))


def test_a_library_caller_that_skips_the_settleable_check_gets_an_error_not_a_phantom_pool():
    """the payment chain from a notebook, on cases with a claim without 统筹区 and one without hospital: the first made
    the pool "-employee" with a point value of its own, the second crashed in numpy."""
    from dipsim.payment.chain import case_pools

    cases = pa.table({"pool": ["990100", None, "990100"], "insurance_type": ["employee", "employee", ""]})
    with pytest.raises(InputError, match=r"^2 case\(s\) without a settlement pool \(统筹区 or 险种 missing\)"):
        case_pools(cases)
    with pytest.raises(InputError, match=r"^1 case\(s\) without hospital_id"):
        case_points(np.full(2, 100.0), np.full(2, 1_000.0), np.full(2, 1_000.0), np.array(["H1", None]), HOSPITALS,
                    BASE)
