"""Coding drift and treatment intensity as moves between groups (issue 20, `dipsim.projection.moves`). The expected
values are worked by hand in each test's docstring: a tiny DRG region of ABC5 / ABC3 / ABC1 cases, a tiny DIP
catalogue, one pool."""

from __future__ import annotations

import datetime as dt
import hashlib

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from dipsim.grouping.grouped_cases import GroupedCases
from dipsim.io.errors import InputError
from dipsim.policy import Policy
from dipsim.project import project, projection_of
from dipsim.projection.moves import dip_group_table, drg_group_table

HOSPITALS = pa.table({"hospital_id": ["H1", "H2"], "level": ["三级甲等", "二级甲等"], "type": ["综合", "综合"],
                      "coefficient_override": [1.0, 1.0]})  # coefficient 1: a case's points are its group's
# the DRG scheme of the examples: DRG -> ADRG (ABC on the 5 -> 3 -> 1 ladder; XYZ has only XYZ5)
SCHEME = {"ABC5": "ABC", "ABC3": "ABC", "ABC1": "ABC", "XYZ5": "XYZ"}
RW = {"ABC5": 1.0, "ABC3": 1.5, "ABC1": 2.0, "XYZ5": 0.8}  # standard cost: 1,000 yuan per RW
GROUPS = {"ABC5": 0, "ABC3": 1, "ABC1": 2, "XYZ5": 3}


def region(groups: list[str], costs: list[float], hospitals: list[str], unit="rw", points=None, standard=None):
    """One case per entry, pool P-employee, discharged in 2025, patients paid nothing."""
    n = len(groups)
    ids = [f"{'a' if h == 'H1' else 'b'}{i}" for i, h in enumerate(hospitals)]
    cases = pa.table({"case_id": ids, "hospital_id": hospitals, "pool": ["P"] * n, "insurance_type": ["employee"] * n,
                      "total_cost": costs, "patient_paid": [0.0] * n,
                      "discharge_date": pa.array([dt.date(2025, 1 + i % 12, 10) for i in range(n)], pa.date32())})
    points = points if points is not None else [RW[g] for g in groups]
    standard = standard if standard is not None else [1_000.0 * RW[g] for g in groups]
    grouped = GroupedCases(group=np.array(groups, dtype=object), group_points=np.array(points, float),
                           standard_cost=np.array(standard, float), tcm_group_case=np.zeros(n, bool),
                           tcm_treated=np.zeros(n, bool), unit=unit)
    return cases, grouped


def policy(mode="drg", budget=10_000.0) -> Policy:
    return Policy(values={}).overlay({"payment.mode": mode, "budget.total": {"P-employee": budget}})


def by(results, year):
    h = results.hospitals
    return {r["hospital_id"]: r for r in h[h["year"] == year].to_dict("records")}


def hash_order(ids: list[str], key: str) -> list[str]:
    """The documented order (docs/projection.md): pandas' hash_array of the case ids with hash_key the first 16 hex
    digits of sha256(key), lowest first."""
    rank = pd.util.hash_array(np.array(ids, dtype=object), hash_key=hashlib.sha256(key.encode()).hexdigest()[:16],
                              categorize=False)
    return [ids[i] for i in np.argsort(rank, kind="stable")]


# ------------------------------------------------------------------ DRG: x5 -> x3 -> x1


def drg_example():
    """H1: a0 ABC5 cost 600, a1 ABC5 1,000, a2 ABC3 1,500, a3 ABC1 5,000; H2: b4 ABC5 1,000, b5 XYZ5 800."""
    return region(["ABC5", "ABC5", "ABC3", "ABC1", "ABC5", "XYZ5"], [600.0, 1_000.0, 1_500.0, 5_000.0, 1_000.0, 800.0],
                  ["H1", "H1", "H1", "H1", "H2", "H2"])


def test_the_drg_group_table_ladders_up_within_an_adrg():
    """ABC5 -> ABC3 -> ABC1, ABC1 at the top, XYZ5 without a higher DRG in the scheme; RW and standard cost as the
    cases have them."""
    _, grouped = drg_example()
    table = drg_group_table(grouped, SCHEME)
    up = {table.codes[k]: (table.codes[t] if t >= 0 else None) for k, t in enumerate(table.severity_up)}
    assert up == {"ABC5": "ABC3", "ABC3": "ABC1", "ABC1": None, "XYZ5": None}
    rw = dict(zip(table.codes, table.points))
    assert rw == RW and dict(zip(table.codes, table.standard_cost))["ABC3"] == 1_500.0
    # the scheme has ABC3 but the region no weight for it: ABC5 could not move (not two steps up)
    _, grouped = region(["ABC5", "ABC1"], [1_000.0, 2_000.0], ["H1", "H1"])
    table = drg_group_table(grouped, SCHEME)
    assert list(table.severity_up) == [-1, -1]


def test_half_the_cases_move_up_a_severity_level_priced_to_the_fen_by_hand():
    """seed 2: H1's cases in the order of their hash (key "2\\0severity") are a3, a0, a2, a1.
    Year 0 (RW x 100 points; r = cost / standard cost, normal between 0.5 and 2): a0 100 (r 0.6), a1 100, a2 150,
    a3 200 x ((2.5 - 2) + 1) = 300 (high outlier): H1 650; H2: b4 100, b5 80: 180.
    Year 1, H1 severity share 0.5: round(0.5 x 4) = 2 picked: a3 (ABC1, the top: could not move) and a0, moved to
    ABC3 (RW 1.5, standard cost 1,500): r = 600 / 1,500 = 0.4 < 0.5, a low outlier now: 150 x 0.4 = 60 points.
    H2 share 1: b4 -> ABC3 (r 0.667, 150 points); b5 XYZ5 has no higher DRG: could not move.
    H1 60 + 100 + 150 + 300 = 610, H2 150 + 80 = 230, total 840; budget 10,000: V = 10,000 / 840.
    H1 610 V = 7,261.904761... yuan = 726,190.476 fen, H2 230 V = 273,809.524 fen: floors 726,190 + 273,809 =
    999,999, the fen left to the larger remainder (H2 .524) -> H1 7,261.90, H2 2,738.10.
    CMI (mean RW): H1 (1.5 + 1 + 1.5 + 2) / 4 = 1.5 (year 0 1.375), H2 (1.5 + 0.8) / 2 = 1.15.
    Year 2 (share 0.5 more: all of H1 picked): a1 -> ABC3 (r 0.667, 150), a2 -> ABC1 (r 0.75, 200), a0 stays moved
    (one step: 60), a3 could not move: H1 moved 3, unmoved 1; 60 + 150 + 200 + 300 = 710 points."""
    assert hash_order(["a0", "a1", "a2", "a3"], "2\0severity") == ["a3", "a0", "a2", "a1"]
    cases, grouped = drg_example()
    spec = projection_of({"projection": {"years": 2, "seed": 2},
                          "behaviour": {"severity_share_by_hospital": {"H1": 0.5, "H2": 1.0}}})
    results = project(cases, HOSPITALS, policy(), spec, grouped, groups=drg_group_table(grouped, SCHEME))
    y0, y1, y2 = by(results, 0), by(results, 1), by(results, 2)
    assert (y0["H1"]["points"], y0["H2"]["points"]) == (650.0, 180.0)
    assert (y1["H1"]["points"], y1["H2"]["points"]) == (610.0, 230.0)
    assert (y1["H1"]["payment"], y1["H2"]["payment"]) == (7_261.90, 2_738.10)
    assert (y1["H1"]["fund_payout"], y1["H2"]["fund_payout"]) == (7_261.90, 2_738.10)
    assert (y1["H1"]["severity_moved"], y1["H1"]["severity_unmoved"]) == (1, 1)
    assert (y1["H2"]["severity_moved"], y1["H2"]["severity_unmoved"]) == (1, 1)
    assert y0["H1"]["cmi"] == 1.375 and y1["H1"]["cmi"] == 1.5 and y1["H2"]["cmi"] == 1.15
    assert y1["H1"]["intensity_moved"] == 0 and y0["H1"]["severity_moved"] == 0
    assert (y2["H1"]["points"], y2["H1"]["severity_moved"], y2["H1"]["severity_unmoved"]) == (710.0, 3, 1)
    point_value = results.years.set_index("year")["point_value"]
    assert point_value[1] == pytest.approx(10_000 / 840, abs=1e-10)  # years.csv: 10 decimals


def test_zero_shares_with_a_group_table_are_the_base_year_to_the_fen():
    cases, grouped = drg_example()
    spec = projection_of({"projection": {"years": 2, "seed": 2},
                          "behaviour": {"severity_share": 0.0, "severity_elasticity": 2.0,
                                        "severity_elasticity_pv": 3.0}})
    results = project(cases, HOSPITALS, policy(), spec, grouped, groups=drg_group_table(grouped, SCHEME))
    base = by(results, 0)
    for year in (1, 2):
        for hospital, row in by(results, year).items():
            for column in ("cases", "points", "cmi", "payment", "fund_payout", "severity_moved"):
                assert row[column] == base[hospital][column], (year, hospital, column)


def ten_each(costs=(1_000.0, 1_000.0)):
    """10 ABC5 cases a hospital (H1: a0.., H2: b10..), H1's costing costs[0], H2's costs[1]; the group table from
    published weights (no base case is in ABC3)."""
    cases, grouped = region(["ABC5"] * 20, [costs[0]] * 10 + [costs[1]] * 10, ["H1"] * 10 + ["H2"] * 10)
    weights = pd.DataFrame({"drg": list(RW), "rw": list(RW.values()), "mean_cost": [1_000 * w for w in RW.values()]})
    return cases, grouped, drg_group_table(grouped, SCHEME, weights)


def test_the_response_to_the_payment_cost_ratio_by_hand():
    """H1's cases cost 1,500 (r 1.5), H2's 700 (0.7): all normal, 100 points each, V = 10,000 / 2,000 = 5: H1 is
    paid 5,000 for 15,000 (ratio 1/3), H2 5,000 for 7,000 (5/7). severity share 0.1, elasticity 1: H1
    0.1 x 3 = 0.3 -> 3 cases moved, H2 0.1 x 1.4 = 0.14 -> round(1.4) = 1; without the elasticity 1 and 1.
    H1's points: 7 x 100 + 3 x 150 = 1,150 (1,500 / 1,500 = 1: normal in ABC3)."""
    cases, grouped, groups = ten_each((1_500.0, 700.0))
    plain = projection_of({"projection": {"years": 1, "seed": 3}, "behaviour": {"severity_share": 0.1}})
    y1 = by(project(cases, HOSPITALS, policy(), plain, grouped, groups=groups), 1)
    assert (y1["H1"]["severity_moved"], y1["H2"]["severity_moved"]) == (1, 1)
    responds = projection_of({"projection": {"years": 1, "seed": 3},
                              "behaviour": {"severity_share": 0.1, "severity_elasticity": 1.0}})
    y1 = by(project(cases, HOSPITALS, policy(), responds, grouped, groups=groups), 1)
    assert (y1["H1"]["severity_moved"], y1["H2"]["severity_moved"]) == (3, 1)
    assert y1["H1"]["points"] == 1_150.0


def test_the_response_to_the_point_values_change_by_hand():
    """Costs 1,000: every case normal in ABC5 and in ABC3 (r 0.667). share 0.2 a year. Year 1: 2 cases a hospital
    moved (+50 points each): 2,200 points, V_1 = 10,000 / 2,200 = 5 x 10/11 (V_0 = 5). Year 2 (the point value
    fell by 1/11): share 0.2 x (10/11)^-5 = 0.2 x 1.61051 = 0.322102, moved share 0.522102 -> round(5.22) = 5
    cases a hospital; with elasticity_pv 0: 0.4 -> 4. Year 1 is the same either way (no change seen yet)."""
    cases, grouped, groups = ten_each()
    moved = {}
    for e in (0.0, 5.0):
        spec = projection_of({"projection": {"years": 2, "seed": 1},
                              "behaviour": {"severity_share": 0.2, "severity_elasticity_pv": e}})
        results = project(cases, HOSPITALS, policy(), spec, grouped, groups=groups)
        moved[e] = [(by(results, y)["H1"]["severity_moved"], by(results, y)["H2"]["severity_moved"]) for y in (1, 2)]
        assert results.years.set_index("year")["point_value"][1] == pytest.approx(50 / 11, abs=1e-10)
    assert moved == {0.0: [(2, 2), (4, 4)], 5.0: [(2, 2), (5, 5)]}


def test_moves_without_a_group_table_or_intensity_under_drg_are_errors():
    cases, grouped, _ = ten_each()
    spec = projection_of({"projection": {"years": 1}, "behaviour": {"severity_share": 0.1}})
    with pytest.raises(InputError, match="group table"):
        project(cases, HOSPITALS, policy(), spec, grouped)
    spec = projection_of({"projection": {"years": 1}, "behaviour": {"intensity_share": 0.1}})
    with pytest.raises(InputError, match="need the cases' principal diagnoses"):
        project(cases, HOSPITALS, policy(), spec, grouped, groups=drg_group_table(grouped, SCHEME))
    with pytest.raises(InputError, match="severity_share_by_hospital: no hospital H9"):
        project(cases, HOSPITALS, policy(), projection_of({"projection": {"years": 1}, "behaviour": {
            "severity_share_by_hospital": {"H9": 0.1}}}), grouped, groups=drg_group_table(grouped, SCHEME))
    with pytest.raises(InputError, match="intensity_share"):
        projection_of({"projection": {"years": 1}, "behaviour": {"intensity_share": 1.5}})


def test_drg_intensity_moves_to_the_next_drg_its_diagnosis_is_treated_in_by_hand():
    """Where the base year treats each principal diagnosis (DRGs with at least 5 of its cases):
    K35: XYZ5 x 6 (RW 0.8), ABC5 x 5 (4 in H1, 1 in H2; RW 1.0), ABC1 x 2 (RW 2.0: too few, not a treatment of K35);
    J18: ABC3 x 5 (1.5), ABC1 x 5 (2.0); one ABC5 case without a diagnosis.
    So K35 in XYZ5 -> ABC5; K35 in ABC5 or ABC1: nothing above among K35's treatments; J18 in ABC3 -> ABC1, J18 in
    ABC1: the top; no diagnosis: no move. Each case costs its DRG's standard cost (1,000 per RW: r = 1).
    Year 1, every H1 case picked (share 1): 6 + 5 = 11 moved, 4 + 2 + 5 + 1 = 12 could not. H1's points (RW x 100;
    a moved case r = cost / new standard cost: 800 / 1,000 = 0.8 and 1,500 / 2,000 = 0.75, normal): 6 x 100 + 4 x 100
    + 2 x 200 + 5 x 200 + 5 x 200 + 100 = 3,500, against 6 x 80 + 4 x 100 + 2 x 200 + 5 x 150 + 5 x 200 + 100 =
    3,130 in the base year; H2's ABC5 case (K35, no target) 100 in both."""
    groups = ["XYZ5"] * 6 + ["ABC5"] * 4 + ["ABC1"] * 2 + ["ABC3"] * 5 + ["ABC1"] * 5 + ["ABC5"] + ["ABC5"]
    diagnoses = np.array(["K35"] * 12 + ["J18"] * 10 + [None] + ["K35"], dtype=object)
    hospitals = ["H1"] * 23 + ["H2"]
    cases, grouped = region(groups, [1_000.0 * RW[g] for g in groups], hospitals)
    table = drg_group_table(grouped, SCHEME, diagnoses=diagnoses)
    target = [table.codes[t] if t >= 0 else None for t in table.intensity_targets()]
    assert target == ["ABC5"] * 6 + [None] * 6 + ["ABC1"] * 5 + [None] * 5 + [None, None]
    spec = projection_of({"projection": {"years": 1}, "behaviour": {"intensity_share_by_hospital": {"H1": 1.0}}})
    results = project(cases, HOSPITALS, policy(), spec, grouped, groups=table)
    y0, y1 = by(results, 0), by(results, 1)
    assert (y1["H1"]["intensity_moved"], y1["H1"]["intensity_unmoved"]) == (11, 12)
    assert (y0["H1"]["points"], y1["H1"]["points"], y1["H2"]["points"]) == (3_130.0, 3_500.0, 100.0)


def test_drg_intensity_ties_go_to_the_lower_code_and_few_cases_are_no_treatment():
    """Diagnosis T: 5 cases each in DRGs B and A (both 2.0 points) and C (1.0): a C case moves to A (the lower code
    of the tie); with 4 cases in A it is no treatment of T, so to B; a case of another diagnosis does not move."""
    from dipsim.projection.moves import drg_intensity_up

    codes, points = np.array(["B", "A", "C"], object), np.array([2.0, 2.0, 1.0])
    case_group = np.array([2] * 5 + [0] * 5 + [1] * 5 + [2])
    diagnoses = np.array(["T"] * 15 + ["U"], object)
    up = drg_intensity_up(case_group, points, codes, diagnoses)
    assert [codes[t] if t >= 0 else None for t in up] == ["A"] * 5 + [None] * 10 + [None]
    up = drg_intensity_up(case_group[1:], points, codes, diagnoses[1:], min_cases=5)  # one C case fewer: still A
    assert codes[up[0]] == "A"
    fewer_a = np.array([2] * 5 + [0] * 5 + [1] * 4)
    up = drg_intensity_up(fewer_a, points, codes, np.array(["T"] * 14, object))
    assert [codes[t] if t >= 0 else None for t in up[:5]] == ["B"] * 5


def test_drg_intensity_neither_moves_from_nor_to_qy_or_0000():
    """Diagnosis T: 5 cases each in C (1.0 RW), AQY (2.0, 与主要诊断无关的手术), 0000 (2.5, ungroupable) and B (3.0):
    a C case moves to B (AQY and 0000 are no treatment of T, though nearer); AQY, 0000 and B cases stay."""
    from dipsim.projection.moves import drg_intensity_up

    codes, points = np.array(["C", "AQY", "0000", "B"], object), np.array([1.0, 2.0, 2.5, 3.0])
    case_group = np.repeat([0, 1, 2, 3], 5)
    up = drg_intensity_up(case_group, points, codes, np.array(["T"] * 20, object))
    assert [codes[t] if t >= 0 else None for t in up] == ["B"] * 5 + [None] * 15


def test_intensity_min_cases_is_read_from_the_file():
    """The region of test_drg_intensity_moves_to_the_next_drg_its_diagnosis_is_treated_in_by_hand with [behaviour]
    intensity_min_cases = 2: K35's ABC1 (2 cases) is now a treatment, so H1's 4 K35 ABC5 cases move to it too: 6
    (XYZ5 -> ABC5) + 4 (ABC5 -> ABC1) + 5 (J18 ABC3 -> ABC1) = 15 moved, 2 + 5 (ABC1, the top) + 1 (no diagnosis) =
    8 could not; the table's targets at the default 5 are not changed. 0, or not a whole number, is an error."""
    groups = ["XYZ5"] * 6 + ["ABC5"] * 4 + ["ABC1"] * 2 + ["ABC3"] * 5 + ["ABC1"] * 5 + ["ABC5"] + ["ABC5"]
    diagnoses = np.array(["K35"] * 12 + ["J18"] * 10 + [None] + ["K35"], dtype=object)
    cases, grouped = region(groups, [1_000.0 * RW[g] for g in groups], ["H1"] * 23 + ["H2"])
    table = drg_group_table(grouped, SCHEME, diagnoses=diagnoses)
    before = table.intensity_targets().copy()
    spec = projection_of({"projection": {"years": 1},
                          "behaviour": {"intensity_share_by_hospital": {"H1": 1.0}, "intensity_min_cases": 2}})
    assert spec.intensity_min_cases == 2
    y1 = by(project(cases, HOSPITALS, policy(), spec, grouped, groups=table), 1)
    assert (y1["H1"]["intensity_moved"], y1["H1"]["intensity_unmoved"]) == (15, 8)
    assert np.array_equal(table.intensity_targets(5), before) and not np.array_equal(table.intensity_targets(2), before)
    for wrong in (0, 2.5):
        with pytest.raises(InputError, match="intensity_min_cases"):
            projection_of({"projection": {"years": 1}, "behaviour": {"intensity_min_cases": wrong}})


# ------------------------------------------------------------------ DIP


def catalog():
    from dipsim.catalog import CatalogOptions
    from dipsim.grouping.dip import DipCatalog

    groups = pa.table({"group_id": ["D1/保守治疗", "D1/诊断性操作", "D1/手术", "E1/保守治疗", "TCM/D1"],
                       "kind": ["core", "core", "core", "core", "tcm"],
                       "diagnosis": ["D1", "D1", "D1", "E1", "D1"], "points": [100.0, 150.0, 300.0, 80.0, 120.0],
                       "mean_cost": [1_000.0, 1_500.0, 3_000.0, 800.0, 1_200.0]})
    return DipCatalog(groups=groups, options=CatalogOptions(), source="test")


def test_dip_intensity_moves_to_the_next_group_of_the_same_diagnosis():
    """D1/保守治疗 (100 points) -> D1/诊断性操作 (150; the TCM group's 120 is not a target) -> D1/手术 (300, the
    top); E1 has one group. Intensity share 1 for H1: a0 (D1/保守治疗, cost 1,000) -> D1/诊断性操作: 150 points
    (r 0.667); a1 (D1/诊断性操作, cost 4,000) -> D1/手术: r 4,000 / 3,000 = 1.33, 300 points (it was a high
    outlier of 150 x ((2.667 - 2) + 1) = 250 points); a2 (D1/手术) and a3 (E1) could not move: 2 moved, 2 not.
    H1 year 1: 150 + 300 + 300 + 80 = 830 points (year 0: 100 + 250 + 300 + 80 = 730)."""
    groups = ["D1/保守治疗", "D1/诊断性操作", "D1/手术", "E1/保守治疗", "D1/保守治疗"]
    points = {"D1/保守治疗": 100.0, "D1/诊断性操作": 150.0, "D1/手术": 300.0, "E1/保守治疗": 80.0}
    cost = {"D1/保守治疗": 1_000.0, "D1/诊断性操作": 1_500.0, "D1/手术": 3_000.0, "E1/保守治疗": 800.0}
    cases, grouped = region(groups, [1_000.0, 4_000.0, 3_000.0, 800.0, 1_000.0], ["H1"] * 4 + ["H2"], "points",
                            [points[g] for g in groups], [cost[g] for g in groups])
    table = dip_group_table(grouped, catalog())
    up = {table.codes[k]: (table.codes[t] if t >= 0 else None) for k, t in enumerate(table.intensity_up)}
    assert up == {"D1/保守治疗": "D1/诊断性操作", "D1/诊断性操作": "D1/手术", "D1/手术": None, "E1/保守治疗": None,
                  "TCM/D1": None}
    spec = projection_of({"projection": {"years": 1}, "behaviour": {"intensity_share_by_hospital": {"H1": 1.0}}})
    results = project(cases, HOSPITALS, policy("dip"), spec, grouped, groups=table)
    y0, y1 = by(results, 0), by(results, 1)
    assert (y0["H1"]["points"], y1["H1"]["points"]) == (730.0, 830.0)
    assert (y1["H1"]["intensity_moved"], y1["H1"]["intensity_unmoved"]) == (2, 2)
    assert (y1["H2"]["intensity_moved"], y1["H2"]["points"]) == (0, 100.0)
    assert y1["H1"]["cmi"] == (150 + 300 + 300 + 80) / 4


def test_dip_severity_moves_the_auxiliary_level_up():
    """Auxiliary catalogue: severity I 1.0, II 1.1, III 1.3; age 66岁及以上 1.2; combine product. a0 (66+, I:
    factor 1.2) -> II: 1.2 x 1.1 = 1.32; a1 (18-65, II: 1.1) -> III: 1.3; a2 III and a3 IV-长 (a death) could not
    move. With "max": a0 -> max(1.2, 1.1) = 1.2. Severity share 1 for H1, all cases 100 points, normal:
    H1 year 0 120 + 110 + 130 + 100 = 460 points, year 1 132 + 130 + 130 + 100 = 492."""
    from dipsim.auxiliary import DEFAULT_AGE, AuxiliaryCatalog, Band

    age = tuple(Band(b.label, 1.2 if b.label == "66岁及以上" else 1.0, b.max_days, b.max_years) for b in DEFAULT_AGE)
    aux = AuxiliaryCatalog(age=age, severity={"I": 1.0, "II": 1.1, "III": 1.3, "IV-短": 1.0, "IV-长": 1.0})
    aux_table = pa.table({"case_id": ["a0", "a1", "a2", "a3", "b4"],
                          "age_band": ["66岁及以上", "18-65岁", "18-65岁", "18-65岁", "18-65岁"],
                          "severity": ["I", "II", "III", "IV-长", "I"], "cci": pa.array([0] * 5, pa.int16()),
                          "cci_band": ["0"] * 5, "tumour": ["无"] * 5,
                          "aux_factor": [1.2, 1.1, 1.3, 1.0, 1.0]})
    groups = ["E1/保守治疗"] * 5
    cases, grouped = region(groups, [1_000.0] * 5, ["H1"] * 4 + ["H2"], "points", [100.0] * 5, [1_000.0] * 5)
    table = dip_group_table(grouped, catalog(), aux_table, aux)
    assert table.aux_up[:2].tolist() == pytest.approx([1.32, 1.3]) and np.isnan(table.aux_up[2:4]).all()
    from dataclasses import replace

    assert dip_group_table(grouped, catalog(), aux_table, replace(aux, combine="max")).aux_up[0] == 1.2
    spec = projection_of({"projection": {"years": 1}, "behaviour": {"severity_share_by_hospital": {"H1": 1.0}}})
    results = project(cases, HOSPITALS, policy("dip"), spec, grouped, groups=table)
    y0, y1 = by(results, 0), by(results, 1)
    assert y0["H1"]["points"] == 460.0 and y1["H1"]["points"] == pytest.approx(492.0)
    assert (y1["H1"]["severity_moved"], y1["H1"]["severity_unmoved"]) == (2, 2)
    same = project(cases, HOSPITALS, policy("dip"), spec, grouped, np.array([1.2, 1.1, 1.3, 1.0, 1.0]), groups=table)
    assert by(same, 1)["H1"]["points"] == y1["H1"]["points"]
    with pytest.raises(ValueError, match="auxiliary catalogue"):  # aux factors of another catalogue
        project(cases, HOSPITALS, policy("dip"), spec, grouped, np.ones(5), groups=table)
    # without the auxiliary catalogue a DIP group has no severity to move up
    with pytest.raises(InputError, match="auxiliary catalogue"):
        project(cases, HOSPITALS, policy("dip"), spec, grouped, groups=dip_group_table(grouped, catalog()))


# ------------------------------------------------------------------ the command line


def test_cli_moves_cases_on_a_synthetic_region(tmp_path):
    """`dipsim project` builds the group table itself: DRG severity share 0.1 for every hospital: in year 1 each
    hospital has round_half_even(0.1 x its cases) picked, moved or counted as could not move; DIP with --auxiliary
    moves severity and intensity, and the manifest names the auxiliary catalogue; DIP severity without it is exit 1.
    (The CMI need not rise: the region's weights are calibrated on its own costs, an x3 may weigh less than its x5.)"""
    import csv
    import json
    from pathlib import Path

    from dipsim.catalog import CatalogOptions, build_catalog, write_catalog
    from dipsim.cli import main
    from dipsim.io import load_cases
    from dipsim.synth import synthesize_region

    synthesize_region(tmp_path / "region", cases=3_000, hospitals=6, seed=4)
    write_catalog(build_catalog(load_cases(tmp_path / "region" / "cases").accepted, CatalogOptions(threshold=10)),
                  tmp_path / "cat")
    common = ["--cases", str(tmp_path / "region" / "cases"), "--hospitals",
              str(tmp_path / "region" / "hospitals.parquet"), "--budget-share", "0.6", "-q", "--no-report"]
    scenarios = Path(__file__).resolve().parent.parent / "scenarios"
    examples = Path(__file__).resolve().parent.parent / "examples"

    def rows(out):
        with open(out / "hospitals.csv", encoding="utf-8-sig", newline="") as f:
            return {(r["year"], r["hospital_id"]): r for r in csv.DictReader(f)}

    drg = tmp_path / "drg.toml"
    drg.write_text(f'[projection]\nyears = 1\npolicy = "{(scenarios / "baseline_drg.toml").as_posix()}"\n'
                   '[behaviour]\nseverity_share = 0.1\n', encoding="utf-8")
    assert main(["project", str(drg), *common, "-o", str(tmp_path / "drg")]) == 0
    got = rows(tmp_path / "drg")
    hospitals = {h for _, h in got}
    for h in hospitals:
        y0, y1 = got["0", h], got["1", h]
        picked = int(y1["severity_moved"]) + int(y1["severity_unmoved"])
        assert picked == round(0.1 * int(y1["cases"])), h
        assert y0["severity_moved"] == "0" and y0["cases"] == y1["cases"]
    assert sum(int(got["1", h]["severity_moved"]) for h in hospitals) > 0

    dip = tmp_path / "dip.toml"
    dip.write_text(f'[projection]\nyears = 1\npolicy = "{(scenarios / "baseline.toml").as_posix()}"\n'
                   '[behaviour]\nseverity_share = 0.1\nintensity_share = 0.1\n', encoding="utf-8")
    assert main(["project", str(dip), *common, "--catalog", str(tmp_path / "cat"), "--auxiliary",
                 str(examples / "dip_auxiliary.toml"), "-o", str(tmp_path / "dip")]) == 0
    got = rows(tmp_path / "dip")
    assert sum(int(got["1", h]["severity_moved"]) for h in hospitals) > 0
    assert sum(int(got["1", h]["intensity_moved"]) for h in hospitals) > 0
    manifest = json.loads((tmp_path / "dip" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["auxiliary"] == str(examples / "dip_auxiliary.toml")
    assert main(["project", str(dip), *common, "--catalog", str(tmp_path / "cat"), "-o", str(tmp_path / "x")]) == 1


def test_the_command_gives_drg_intensity_the_cases_principal_diagnoses():
    """`dipsim project`'s group table (`cli._projection_moves`) reads each case's principal diagnosis from its
    diagnoses list (the first code): K35's XYZ5 cases move to ABC5, as above."""
    import argparse

    from dipsim.cli import _projection_moves

    groups = ["XYZ5"] * 5 + ["ABC5"] * 5
    cases, grouped = region(groups, [1_000.0 * RW[g] for g in groups], ["H1"] * 10)
    cases = cases.append_column("diagnoses", pa.array([["K35", "E11"]] * 10, pa.list_(pa.string())))
    spec = projection_of({"projection": {"years": 1}, "behaviour": {"intensity_share": 0.5}})
    _, table = _projection_moves(argparse.Namespace(auxiliary=None), [spec], cases, grouped, "drg", None, SCHEME)
    assert [table.codes[t] if t >= 0 else None for t in table.intensity_targets()] == ["ABC5"] * 5 + [None] * 5
