"""Per-hospital growth caps (issue 20's tiered caps: step 8 of the payment chain, `dipsim.payment.caps`): worked by
hand on a pool of three hospitals, to the fen; a hospital without a reference warned and left uncapped; the same
money from `settle`, the scenario runner's baseline and nightly's chunked sums; a cap dated to start in year 2 of a
projection, by hand; and the clear errors of bad tiers and bad references."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_one_chain import BUDGETS, DATED, assert_same_money, read_rows, world  # noqa: F401 (world: a fixture)

from dipsim.grouping.grouped_cases import GroupedCases
from dipsim.io.errors import InputError
from dipsim.payment.caps import CapWarning
from dipsim.policy import Policy, PolicyError

TIERS = [[0, 1.0], [1.0, 0.5], [1.2, 0.25]]  # within the cap 1; up to 1.2 x the cap 0.5; beyond 0.25
HOSPITALS = pa.table({"hospital_id": ["A", "B", "C"], "level": ["三级甲等"] * 3, "type": ["综合"] * 3,
                      "reference_points": [400.0, 400.0, 400.0]})


def three(counts=(4, 6, 8)):
    """One pool P-employee; hospitals A, B, C with 4, 6 and 8 cases; every case group G of 100 points at its
    standard cost 1,000 (r = 1: factor 1; level coefficient 1), discharged 2025-06-10, patients paid nothing: A has
    400 points, B 600, C 800."""
    n = sum(counts)
    hospitals = [h for h, k in zip("ABC", counts) for _ in range(k)]
    cases = pa.table({"case_id": [f"c{i}" for i in range(n)], "hospital_id": hospitals, "pool": ["P"] * n,
                      "insurance_type": ["employee"] * n, "total_cost": [1_000.0] * n, "patient_paid": [0.0] * n,
                      "discharge_date": pa.array([dt.date(2025, 6, 10)] * n, pa.date32())})
    grouped = GroupedCases(group=np.array(["G"] * n, dtype=object), group_points=np.full(n, 100.0),
                           standard_cost=np.full(n, 1_000.0), tcm_group_case=np.zeros(n, bool),
                           tcm_treated=np.zeros(n, bool))
    return cases, grouped


def run(changes: dict, hospitals=HOSPITALS, budget=10_000.0):
    from dipsim.payment.chain import CaseSet, run_chain

    cases, grouped = three()
    policy = Policy(values={}).overlay({"budget.total": {"P-employee": budget}, **changes})
    return run_chain(CaseSet.of(cases), grouped, hospitals, policy)


CAPPED = {"budget.hospital_cap_growth": 0.25, "budget.hospital_cap_tiers": TIERS}


# ------------------------------------------------------------------ by hand


def test_three_hospitals_by_hand():
    """Reference 400 points each, growth 0.25: cap C = 400 x 1.25 = 500 points each.
    A: 400 <= 500, all within the cap: 400 effective points (factor 1).
    B: 600: 500 x 1.0 + (600 - 500) x 0.5 (between C and 1.2 C = 600) = 550 (factor 550 / 600 = 11 / 12).
    C: 800: 500 x 1.0 + 100 x 0.5 + (800 - 600) x 0.25 = 600 (factor 600 / 800 = 0.75).
    Pool: 1,550 effective points, budget 10,000, no reserve, no bands: V = 10,000 / 1,550 = 6.4516129...
    A 400 V = 2,580.6451..., B 550 V = 3,548.3870..., C 600 V = 3,870.9677...: floors 2,580.64 + 3,548.38 +
    3,870.96 = 9,999.98; the 2 fen left to the largest remainders, C (.77 fen) and B (.71) -> 2,580.64, 3,548.39,
    3,870.97 (sum 10,000.00)."""
    capped = run(CAPPED)
    rows = {r["hospital_id"]: r for r in capped.hospitals.to_pylist()}
    assert {h: r["points"] for h, r in rows.items()} == {"A": 400.0, "B": 550.0, "C": 600.0}
    assert capped.pools.to_pylist()[0]["point_value"] == pytest.approx(10_000 / 1_550, abs=1e-9)
    assert {h: r["fund_payout"] for h, r in rows.items()} == {
        "A": Decimal("2580.64"), "B": Decimal("3548.39"), "C": Decimal("3870.97")}
    # the case table: each case's points x its hospital's factor, summing to the hospital's effective points
    table = capped.case_table().to_pandas()
    assert table.groupby("hospital_id")["cap_factor"].unique().map(list).to_dict() == {
        "A": [1.0], "B": [pytest.approx(11 / 12)], "C": [0.75]}
    assert (table["reviewed_points"] == 100.0).all()
    assert table.groupby("hospital_id")["case_points"].sum().to_dict() == pytest.approx(
        {"A": 400.0, "B": 550.0, "C": 600.0}, abs=1e-9)


def test_no_cap_is_the_old_chain():
    """No tiers (the default): every factor 1, 1,800 points, V = 10,000 / 1,800: A 2,222.22 (.22), B 3,333.33
    (.33), C 4,444.44 (.44): 9,999.99, the fen to C -> 4,444.45. The reference column changes nothing."""
    plain = run({})
    rows = {r["hospital_id"]: r for r in plain.hospitals.to_pylist()}
    assert {h: r["points"] for h, r in rows.items()} == {"A": 400.0, "B": 600.0, "C": 800.0}
    assert {h: r["fund_payout"] for h, r in rows.items()} == {
        "A": Decimal("2222.22"), "B": Decimal("3333.33"), "C": Decimal("4444.45")}
    assert plain.settlement.cap_factor is None
    table = plain.case_table()
    assert set(table["cap_factor"].to_pylist()) == {1.0}
    assert table["case_points"].equals(table["reviewed_points"])
    without = run({}, hospitals=HOSPITALS.drop(["reference_points"]))
    assert without.hospitals.equals(plain.hospitals) and without.pools.equals(plain.pools)


def test_a_hospital_without_a_reference_is_warned_and_not_capped():
    """C has no reference (an empty cell): not capped, 800 points; A 400, B 550 as above: 1,750 points,
    V = 10,000 / 1,750 = 5.7142857...: A 2,285.7142..., B 3,142.8571..., C 4,571.4285...: floors 2,285.71 +
    3,142.85 + 4,571.42 = 9,999.98; the 2 fen to the largest remainders, C (.86 fen) and B (.71; A's is .43) ->
    2,285.71, 3,142.86, 4,571.43."""
    hospitals = HOSPITALS.set_column(3, "reference_points", pa.array([400.0, 400.0, None], pa.float64()))
    with pytest.warns(CapWarning, match=r"1 hospital\(s\) have no reference_points .*not capped \(C\)"):
        capped = run(CAPPED, hospitals=hospitals)
    rows = {r["hospital_id"]: r for r in capped.hospitals.to_pylist()}
    assert {h: r["points"] for h, r in rows.items()} == {"A": 400.0, "B": 550.0, "C": 800.0}
    assert {h: r["fund_payout"] for h, r in rows.items()} == {
        "A": Decimal("2285.71"), "B": Decimal("3142.86"), "C": Decimal("4571.43")}


def test_the_cap_adds_a_hospitals_pools():
    """One reference per hospital: B's 6 cases split over two pools (3 employee, 3 resident: 300 + 300 points)
    count together, 600 against its cap of 500 -> factor 11 / 12 in both pools (275 points each)."""
    from dipsim.payment.chain import CaseSet, run_chain

    cases, grouped = three()
    kinds = ["employee"] * 4 + ["employee", "resident"] * 3 + ["employee"] * 8
    cases = cases.set_column(3, "insurance_type", pa.array(kinds))
    policy = Policy(values={}).overlay({"budget.total": {"P-employee": 10_000.0, "P-resident": 2_000.0}, **CAPPED})
    capped = run_chain(CaseSet.of(cases), grouped, HOSPITALS, policy)
    points = {(r["hospital_id"], r["pool"]): r["points"] for r in capped.hospitals.to_pylist()}
    assert points == {("A", "P-employee"): 400.0, ("B", "P-employee"): 275.0, ("B", "P-resident"): 275.0,
                      ("C", "P-employee"): 600.0}


def test_a_cap_of_zero_reference_pays_the_last_weight():
    """A reference of 0 (a new hospital) puts every point beyond the cap 0: all at the last weight, 0.25."""
    hospitals = HOSPITALS.set_column(3, "reference_points", pa.array([0.0, 400.0, 400.0]))
    rows = {r["hospital_id"]: r for r in run(CAPPED, hospitals=hospitals).hospitals.to_pylist()}
    assert rows["A"]["points"] == 100.0  # 400 x 0.25


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(("tiers", "growth", "why"), [
    ([[0.5, 1.0], [1.0, 0.5]], 0.0, "starts from 0.5, not 0"),
    ([[0, 1.0], [1.2, 0.5], [1.1, 0.25]], 0.0, "do not ascend"),
    ([[0, 1.0], [1.0, 1.5]], 0.0, "not all in \\[0, 1\\]"),
    ([[0, 0.5], [1.0, 0.75]], 0.0, "increase"),
    ([], 0.05, "a growth of 0.05 without tiers caps nothing"),
])
def test_bad_tiers_are_refused_with_the_reason(tiers, growth, why):
    with pytest.raises(PolicyError, match=why):
        Policy(values={}).overlay({"budget.hospital_cap_tiers": tiers, "budget.hospital_cap_growth": growth})


def test_bad_parameter_values_are_refused():
    with pytest.raises(PolicyError, match=r"budget.hospital_cap_growth: -1.0 must be above -1.0"):
        Policy(values={}).overlay({"budget.hospital_cap_growth": -1.0})
    with pytest.raises(PolicyError, match="expected a list of \\[threshold, value\\] pairs"):
        Policy(values={}).overlay({"budget.hospital_cap_tiers": [1.0, 0.5]})


def test_a_policy_file_with_bad_tiers_names_the_file(tmp_path):
    from dipsim.policy import load_policy

    path = tmp_path / "caps.toml"
    path.write_text("[budget]\nhospital_cap_tiers = [[0, 1.0], [1.0, 0.5], [1.0, 0.25]]\n", encoding="utf-8")
    with pytest.raises(PolicyError, match=r"(?s)caps.toml: 1 problem.*do not ascend"):
        load_policy(path)


def test_bad_references_are_refused_row_by_row():
    from dipsim.region import check_hospitals

    table = HOSPITALS.set_column(3, "reference_points", pa.array([400.0, -1.0, float("nan")]))
    with pytest.raises(InputError, match=r"reference_points on row\(s\) 2, 3 is not a finite number of 0 or more"):
        check_hospitals(table, "hospitals.csv")
    text = HOSPITALS.set_column(3, "reference_points", pa.array(["400", "x", ""]))
    with pytest.raises(InputError, match="reference_points must be a number"):
        check_hospitals(text, "hospitals.csv")


# ------------------------------------------------------------------ projection: the cap from year 2


def test_a_cap_dated_to_start_in_year_two_of_a_projection_by_hand():
    """Two hospitals of 10 cases (100 points each, budget 10,000 every year), H1 +10% cases a year. The cap is dated
    from 2027-01-01: the base year (2025) and year 1 (2026) are not capped; year 2 (2027) is, each hospital's
    reference being the points year 1 paid it on.
    Year 1: H1 11 cases = 1,100 points, H2 1,000; V = 10,000 / 2,100: H1 5,238.10, H2 4,761.90 (as uncapped).
    Year 2: H1 12 cases = 1,200 points, H2 1,000. Growth 0.05, tiers [[0, 1], [1, 0.5]]: H1's cap 1,100 x 1.05 =
    1,155, so 1,155 + 45 x 0.5 = 1,177.5 effective points; H2's cap 1,050 > 1,000: 1,000. V = 10,000 / 2,177.5 =
    4.5924225...: H1 1,177.5 V = 5,407.5774..., H2 4,592.4225...: floors 5,407.57 + 4,592.42 = 9,999.99, the fen to
    H1 (.77) -> 5,407.58 and 4,592.42 (uncapped it would be 5,454.55 and 4,545.45)."""
    from test_project import HOSPITALS as TWO
    from test_project import by, pool, tiny

    from dipsim.project import project, projection_of

    cases, grouped = tiny()
    policy = Policy(values={}).overlay({
        "budget.total": {"P-employee": 10_000.0},
        "budget.hospital_cap_growth": {"2025-01-01": 0.0, "2027-01-01": 0.05},
        "budget.hospital_cap_tiers": {"2025-01-01": [], "2027-01-01": [[0, 1.0], [1.0, 0.5]]}})
    spec = projection_of({"projection": {"years": 2, "seed": 7}, "demand": {"volume_growth_by_hospital": {"H1": 0.1}}})
    results = project(cases, TWO, policy, spec, grouped)
    y1, y2 = by(results, 1), by(results, 2)
    assert (y1["H1"]["points"], y1["H2"]["points"]) == (1_100.0, 1_000.0)
    assert (y1["H1"]["fund_payout"], y1["H2"]["fund_payout"]) == (5_238.10, 4_761.90)
    assert (y2["H1"]["cases"], y2["H1"]["points"], y2["H2"]["points"]) == (12, 1_177.5, 1_000.0)
    assert pool(results, 2)["point_value"] == pytest.approx(10_000 / 2_177.5, abs=1e-9)
    assert (y2["H1"]["fund_payout"], y2["H2"]["fund_payout"]) == (5_407.58, 4_592.42)


# ------------------------------------------------------------------ every path: the same money


def capped_policy(growth=0.02) -> str:
    return ('[payment]\nmode = "dip"\n[budget]\ntotal = ' + BUDGETS + f"\nhospital_cap_growth = {growth}\n"
            "hospital_cap_tiers = [[0, 1.0], [1.0, 0.75], [1.05, 0.5], [1.10, 0.25]]\n" + DATED)


def weighted(points: float, cap: float) -> float:
    """The tiers of `capped_policy`, point by point band: within the cap 1, to 1.05 x 0.75, to 1.10 x 0.5, then 0.25."""
    bands = [(0.0, cap, 1.0), (cap, 1.05 * cap, 0.75), (1.05 * cap, 1.10 * cap, 0.5), (1.10 * cap, float("inf"), 0.25)]
    return sum(w * max(0.0, min(points, hi) - lo) for lo, hi, w in bands)


@pytest.fixture(scope="module")
def capped_world(world):  # noqa: F811 (the fixture imported above)
    """The synthetic region of test_one_chain, settled uncapped; a hospitals table whose reference_points are 90% of
    each hospital's uncapped points (over its pools; so its cap, +2%, binds), but the first hospital's (left empty:
    uncapped, warned); the capped policy, and its settlement by `dipsim settle`."""
    from dipsim.cli import main

    (world / "capped.toml").write_text(capped_policy(), encoding="utf-8")
    (world / "uncapped.toml").write_text(capped_policy().replace(
        "hospital_cap_tiers = [[0, 1.0], [1.0, 0.75], [1.05, 0.5], [1.10, 0.25]]", "hospital_cap_tiers = []")
        .replace("hospital_cap_growth = 0.02", "hospital_cap_growth = 0"), encoding="utf-8")

    def settle(policy: str, hospitals, out):
        code = main(["settle", str(world / "region" / "cases"), "--policy", str(world / policy), "--catalog",
                     str(world / "cat"), "--hospitals", str(hospitals), "-o", str(out), "-q"])
        assert code == 0
        return out

    uncapped = settle("uncapped.toml", world / "region" / "hospitals.parquet", world / "uncapped")
    points: dict[str, float] = {}
    for (hospital, _), row in read_rows(uncapped / "hospitals.csv").items():
        points[hospital] = points.get(hospital, 0.0) + float(row["points"])
    table = pq.read_table(world / "region" / "hospitals.parquet")
    ids = table["hospital_id"].to_pylist()
    reference = [None if i == 0 else 0.9 * points[h] for i, h in enumerate(ids)]
    pq.write_table(table.append_column("reference_points", pa.array(reference, pa.float64())),
                   world / "hospitals_ref.parquet")
    with pytest.warns(CapWarning, match=f"not capped \\({ids[0]}\\)"):
        capped = settle("capped.toml", world / "hospitals_ref.parquet", world / "capped")
    return {"uncapped": uncapped, "capped": capped, "points": points, "reference": dict(zip(ids, reference)),
            "first": ids[0]}


def test_settle_pays_each_hospital_its_weighted_points(capped_world):
    """A hospital's points in hospitals.csv (over its pools) are its uncapped points through the tiers (written out
    in `weighted`), the first hospital's unchanged; the case table sums to them."""
    rows = read_rows(capped_world["capped"] / "hospitals.csv")
    got: dict[str, float] = {}
    for (hospital, _), row in rows.items():
        got[hospital] = got.get(hospital, 0.0) + float(row["points"])
    for hospital, points in capped_world["points"].items():
        reference = capped_world["reference"][hospital]
        expected = points if reference is None else weighted(points, reference * 1.02)
        assert got[hospital] == pytest.approx(expected, abs=2e-3), hospital
    assert got[capped_world["first"]] == pytest.approx(capped_world["points"][capped_world["first"]], abs=1e-3)
    cases = pq.read_table(capped_world["capped"] / "cases.parquet").to_pandas()
    assert (cases["cap_factor"] < 1).any()
    sums = cases.groupby(["hospital_id", "pool"])["case_points"].sum()
    for key, row in rows.items():
        assert round(float(sums[key]), 4) == round(float(row["points"]), 4), key
    before = read_rows(capped_world["uncapped"] / "hospitals.csv")
    assert any(Decimal(rows[k]["fund_payout"]) != Decimal(before[k]["fund_payout"]) for k in rows)


def test_scenarios_baseline_is_settle_under_a_cap(world, capped_world, tmp_path):  # noqa: F811
    import csv

    from dipsim.cli import main
    from dipsim.scenarios import BASELINE

    scenario = tmp_path / "scenario.toml"
    scenario.write_text(f'[scenario]\nname = "caps"\nbaseline = "{(world / "capped.toml").as_posix()}"\n\n'
                        '[[variant]]\nname = "growth 5%"\nset = { "budget.hospital_cap_growth" = 0.05 }\n',
                        encoding="utf-8")
    with pytest.warns(CapWarning):
        code = main(["scenarios", "run", str(scenario), "--cases", str(world / "region" / "cases"), "--hospitals",
                     str(world / "hospitals_ref.parquet"), "--catalog", str(world / "cat"), "-o",
                     str(tmp_path / "scen"), "--no-report", "-q"])
    assert code == 0
    with open(tmp_path / "scen" / "hospitals.csv", encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    baseline = {(r["hospital_id"], r["pool"]): r for r in rows if r["scenario"] == BASELINE}
    assert_same_money(read_rows(capped_world["capped"] / "hospitals.csv"), baseline, "scenarios baseline vs settle")
    looser = {(r["hospital_id"], r["pool"]): r for r in rows if r["scenario"] != BASELINE}
    assert looser and looser != baseline  # a growth of 5% pays differently


@pytest.mark.parametrize("engine", ["chunked", "memory"])
def test_nightly_is_settle_under_a_cap(world, capped_world, tmp_path, monkeypatch, engine):  # noqa: F811
    """The chunked engine caps the year's sums (the in-memory path made to fail to prove it is not taken); both
    engines pay as settle, to the fen."""
    from dipsim import nightly as job

    if engine == "chunked":
        def refuse(*args, **kwargs):
            raise AssertionError("chunked fell back to the whole year in memory")

        monkeypatch.setattr(job, "_settle_in_memory", refuse)
    with pytest.warns(CapWarning):
        result = job.run_nightly(world / "region" / "cases", world / "capped.toml", world / "hospitals_ref.parquet",
                                 tmp_path / "state", tmp_path / "out", world / "cat", log=lambda _: None,
                                 engine=engine)
    assert_same_money(read_rows(capped_world["capped"] / "hospitals.csv"), read_rows(result.run_dir / "hospitals.csv"),
                      f"nightly {engine} vs settle")


def test_nightly_year_to_date_caps_at_the_same_share(world, capped_world, tmp_path):  # noqa: F811
    """Six months of the year: nightly settles them with half the annual budget, and caps each hospital at half
    its reference; `dipsim settle` of the same six months with the budgets halved and the references halved pays
    the same, to the fen."""
    import shutil

    from dipsim.cli import main
    from dipsim.nightly import run_nightly

    half = tmp_path / "half"
    half.mkdir()
    for path in sorted((world / "region" / "cases").iterdir())[:6]:
        shutil.copytree(path, half / path.name)
    table = pq.read_table(world / "hospitals_ref.parquet")
    halved = [None if r is None else r / 2 for r in table["reference_points"].to_pylist()]
    pq.write_table(table.set_column(table.column_names.index("reference_points"), "reference_points",
                                    pa.array(halved, pa.float64())), tmp_path / "hospitals_half.parquet")
    (tmp_path / "half.toml").write_text(capped_policy().replace(
        BUDGETS, '{ "990100-employee" = 7500000.0, "990100-resident" = 8000000.0 }'), encoding="utf-8")
    with pytest.warns(CapWarning):
        result = run_nightly(half, world / "capped.toml", world / "hospitals_ref.parquet", tmp_path / "state",
                             tmp_path / "out", world / "cat", log=lambda _: None, engine="chunked")
        code = main(["settle", str(half), "--policy", str(tmp_path / "half.toml"), "--catalog", str(world / "cat"),
                     "--hospitals", str(tmp_path / "hospitals_half.parquet"), "-o", str(tmp_path / "settle"), "-q"])
    assert result.budget_share == 0.5 and code == 0
    assert_same_money(read_rows(tmp_path / "settle" / "hospitals.csv"), read_rows(result.run_dir / "hospitals.csv"),
                      "nightly six months vs settle at half")
    assert (pq.read_table(tmp_path / "settle" / "cases.parquet")["cap_factor"].to_numpy() < 1).any()


def test_explain_shows_the_cap(capped_world):
    """`dipsim explain`: a capped case's step 8 with its hospital's factor; the hospital's reviewed and final
    points."""
    from dipsim.payment.explain import explain_case, explain_hospital

    cases = pq.read_table(capped_world["capped"] / "cases.parquet").to_pandas()
    case = cases[cases["cap_factor"] < 1].iloc[0]
    text = explain_case(capped_world["capped"], case["case_id"])
    assert f"8. hospital growth cap: the hospital's factor {case['cap_factor']:.6f}" in text
    assert "budget.hospital_cap_tiers = [[0, 1.0], [1.0, 0.75], [1.05, 0.5], [1.1, 0.25]]" in text
    assert "9. pool point value (点值)" in text
    hospital = explain_hospital(capped_world["capped"], case["hospital_id"])
    assert "final points after the hospital's growth cap" in hospital and "MISMATCH" not in hospital
