"""Fund supervision screens on hand-made patient histories: each rule flags what docs/domain.md §10 says and nothing
else; the payment consequences cut exactly the flagged cases' points."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from dipsim.policy import Policy
from dipsim.supervise import apply_consequences, screen_cases

DEFAULTS = Policy(values={})
DAY0 = dt.date(2025, 3, 1)


def stays(*rows) -> tuple[pa.Table, list[str]]:
    """Rows of (case_id, patient_id, hospital_id, group, admitted day, LOS, cost, diagnosis, procedure[, mode])."""
    cols = {k: [] for k in ("case_id", "patient_id", "hospital_id", "admission_date", "discharge_date", "los_days",
                            "total_cost", "discharge_mode", "diagnoses", "procedures")}
    groups = []
    for case_id, patient, hospital, group, day, los, cost, dx, px, *mode in rows:
        cols["case_id"].append(case_id)
        cols["patient_id"].append(patient)
        cols["hospital_id"].append(hospital)
        cols["admission_date"].append(DAY0 + dt.timedelta(days=day))
        cols["discharge_date"].append(DAY0 + dt.timedelta(days=day + los))
        cols["los_days"].append(los)
        cols["total_cost"].append(float(cost))
        cols["discharge_mode"].append(mode[0] if mode else 1)
        cols["diagnoses"].append([dx])
        cols["procedures"].append([px] if px else [])
        groups.append(group)
    return pa.table(cols), groups


def background(n: int = 40, group: str = "G1", hospital: str = "H9", cost: float = 10_000.0, los: int = 8,
               dx: str = "K35.800") -> list[tuple]:
    """`n` unremarkable stays of different patients: they set the group's medians."""
    return [(f"B{group}{i}", f"BP{group}{i}", hospital, group, 3 * i, los, cost, dx, None) for i in range(n)]


def flagged(screens, screen: str) -> list[str]:
    return sorted(screens.flags.loc[screens.flags["screen"] == screen, "case_id"])


def test_split_readmission_flags_the_earlier_stay_within_the_window_only():
    table, group = stays(
        ("A1", "P1", "H1", "G1", 0, 5, 9000, "K35.800", None),
        ("A2", "P1", "H1", "G1", 5 + 15, 4, 8000, "K35.800", None),  # 15 days after discharge: a split
        ("B1", "P2", "H1", "G1", 0, 5, 9000, "K35.800", None),
        ("B2", "P2", "H1", "G1", 5 + 16, 4, 8000, "K35.800", None),  # 16 days: not
        ("C1", "P3", "H1", "G1", 0, 5, 9000, "K35.800", None),
        ("C2", "P3", "H2", "G1", 7, 4, 8000, "K35.800", None),  # another hospital: not (same_hospital)
        ("D1", "P4", "H1", "G1", 0, 5, 9000, "K35.800", None),
        ("D2", "P4", "H1", "G2", 7, 4, 8000, "K35.800", None),  # another group: not
        ("E1", "P5", "H1", "G3", 0, 1, 9000, "Z51.100", None),
        ("E2", "P5", "H1", "G3", 3, 1, 8000, "Z51.100", None),  # chemotherapy cycles: exempt
        ("F1", None, "H1", "G1", 0, 5, 9000, "K35.800", None),
        ("F2", None, "H1", "G1", 7, 4, 8000, "K35.800", None),  # no patient id: cannot be linked
        *background())
    screens = screen_cases(table, group, DEFAULTS)
    assert flagged(screens, "split_readmission") == ["A1"]
    row = screens.flags.loc[screens.flags["screen"] == "split_readmission"].iloc[0]
    assert row["related_case_id"] == "A2" and "15 days" in row["reason"]
    jinhua = screen_cases(table, group, DEFAULTS.overlay({"supervision.readmission_days": 10}))
    assert flagged(jinhua, "split_readmission") == []
    anywhere = screen_cases(table, group, DEFAULTS.overlay({"supervision.readmission_same_hospital": False}))
    assert flagged(anywhere, "split_readmission") == ["A1", "C1"]


def test_low_standard_admission_is_short_cheap_and_not_a_death_or_transfer():
    table, group = stays(
        ("L1", "Q1", "H1", "G1", 0, 2, 2_000, "K35.800", None),  # 2 days, 20% of the median: flagged
        ("L2", "Q2", "H1", "G1", 0, 3, 2_000, "K35.800", None),  # 3 days: not
        ("L3", "Q3", "H1", "G1", 0, 1, 3_500, "K35.800", None),  # 35% of the median: not
        ("L4", "Q4", "H1", "G1", 0, 1, 1_000, "K35.800", None, 5),  # died: not
        ("L5", "Q5", "H1", "G1", 0, 1, 1_000, "K35.800", None, 2),  # transferred: not
        *background())
    screens = screen_cases(table, group, DEFAULTS)
    assert flagged(screens, "low_standard") == ["L1"]
    assert "20% of the group's median 10000.00" in screens.flags.loc[screens.flags["case_id"] == "L1", "reason"].iloc[0]


def test_low_standard_needs_a_group_with_enough_cases():
    table, group = stays(("L1", "Q1", "H1", "G1", 0, 1, 100, "K35.800", None), *background(10))
    assert flagged(screen_cases(table, group, DEFAULTS), "low_standard") == []  # 11 cases < 20


def test_long_stay_is_far_above_the_group_median_and_long():
    table, group = stays(
        ("S1", "R1", "H1", "G1", 0, 30, 50_000, "K35.800", None),  # 30 > 3 x 8 and >= 30
        ("S2", "R2", "H1", "G1", 0, 24, 50_000, "K35.800", None),  # 24 = 3 x 8: not above
        *background(), *background(40, group="G2", los=2),
        ("S3", "R3", "H1", "G2", 0, 29, 50_000, "K35.800", None))  # 29 > 6 but < 30 days: not
    assert flagged(screen_cases(table, group, DEFAULTS), "long_stay") == ["S1"]


def test_five_same_flags_the_later_of_two_identical_stays():
    table, group = stays(
        ("V1", "P1", "H1", "G1", 0, 5, 9000, "I20.000", "00.6601"),
        ("V2", "P1", "H1", "G1", 5 + 30, 5, 9000, "I20.000", "00.6601"),  # same everything, 30 days: flagged
        ("W1", "P2", "H1", "G1", 0, 5, 9000, "I20.000", "00.6601"),
        ("W2", "P2", "H1", "G1", 10, 5, 9000, "I20.000", "88.5501"),  # another procedure: not
        ("X1", "P3", "H1", "G1", 0, 5, 9000, "I20.000", None),
        ("X2", "P3", "H1", "G1", 12, 5, 9000, "I20.000", None),  # both without a procedure: the same treatment
        *background())
    screens = screen_cases(table, group, DEFAULTS)
    assert flagged(screens, "five_same") == ["V2", "X2"]
    assert screens.flags.set_index("case_id").loc["V2", "related_case_id"] == "V1"


def test_a_death_in_a_low_risk_group_is_flagged():
    rows = []
    for g, deaths in (("G1", 1), ("G2", 20), ("G3", 20), ("G4", 20), ("G5", 20)):  # G1's mortality: far below
        rows += [(f"{g}-{i}", f"{g}P{i}", "H1", g, i, 5, 9000, "K35.800", None, 5 if i < deaths else 1)
                 for i in range(200)]
    table, group = stays(*rows)
    screens = screen_cases(table, group, DEFAULTS)
    assert flagged(screens, "low_risk_death") == ["G1-0"]


def test_upcoding_flags_the_hospital_coding_mcc_cc_above_its_peers_for_the_same_diagnoses():
    rng = np.random.default_rng(5)
    rows, cc = [], []
    for h in range(10):
        for i in range(400):
            dx = ("K35.800", "I20.000")[i % 2]
            base = 0.2 if dx == "K35.800" else 0.6  # what the region codes for each diagnosis
            if h == 0:
                base = min(1.0, base * 1.5)  # the upcoding hospital
            rows.append((f"H{h}-{i}", f"P{h}-{i}", f"H{h}", "G1", i, 5, 9000, dx, None))
            cc.append(int(rng.random() < base))
    table, group = stays(*rows)
    screens = screen_cases(table, group, DEFAULTS, cc_level=np.array(cc))
    hospitals = screens.hospitals.set_index("hospital_id")
    assert hospitals.index[hospitals["upcoding_flag"]].tolist() == ["H0"]
    assert hospitals.loc["H0", "any_cc_ratio"] > 1.3 and hospitals.loc["H0", "any_cc_z"] > 3
    assert "points_ratio" not in hospitals  # no points given
    assert set(screens.flags.loc[screens.flags["screen"] == "upcoding", "hospital_id"]) == {"H0"}
    assert "upcoding" in screen_cases(table, group, DEFAULTS).skipped  # without MCC/CC levels


def test_consequences_halve_the_split_stay_refuse_low_standard_and_deduct_points():
    table, group = stays(
        ("A1", "P1", "H1", "G1", 0, 5, 9000, "K35.800", None),
        ("A2", "P1", "H1", "G1", 10, 4, 8000, "K35.800", None),
        ("L1", "Q1", "H1", "G1", 0, 1, 1000, "K35.800", None),
        *background())
    screens = screen_cases(table, group, DEFAULTS)
    points = np.full(table.num_rows, 100.0)
    assert (apply_consequences(points, screens, DEFAULTS) == points).all()  # the defaults cut nothing
    policy = DEFAULTS.overlay({"supervision.split_readmission_factor": 0.5, "supervision.low_standard_factor": 0.0,
                               "supervision.deduction_points": {"five_same": 30.0}})
    cut = dict(zip(table["case_id"].to_pylist(), apply_consequences(points, screens, policy)))
    assert cut["A1"] == 50.0 and cut["L1"] == 0.0
    assert cut["A2"] == 70.0  # the later stay of the pair is also a 五同 repeat: 30 points off
    assert sum(v != 100.0 for v in cut.values()) == 3
    with pytest.raises(ValueError, match="unknown screen"):
        apply_consequences(points, screens, DEFAULTS.overlay({"supervision.deduction_points": {"splits": 1.0}}))


@pytest.mark.parametrize("seed", [11, 12])
def test_the_screens_find_the_behaviours_the_generator_injected(tmp_path, seed):
    """Ground truth from the synthetic region: split-stay pairs are found (all but the chemotherapy and
    radiotherapy ones, which the rule exempts) and the upcoding hospitals flagged, with few honest ones."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from dipsim.io import load_cases
    from dipsim.supervise import screen_region
    from dipsim.synth import synthesize_region

    region = synthesize_region(tmp_path / "region", cases=60_000, hospitals=30, seed=seed)
    cases = load_cases(tmp_path / "region" / "cases").accepted
    screens = screen_region(cases, DEFAULTS)
    pairs = pq.read_table(tmp_path / "region" / "ground_truth" / "split_stays.parquet").to_pandas()
    principal = dict(zip(cases["case_id"].to_pylist(), pc.list_element(cases["diagnoses"], 0).to_pylist()))
    exempt = pairs["first_case_id"].map(principal).str.startswith(("Z51.0", "Z51.1", "Z51.2"))
    splits = screens.flags[screens.flags["screen"] == "split_readmission"]
    found = pd.Series(list(zip(pairs["first_case_id"], pairs["second_case_id"]))).isin(
        set(zip(splits["case_id"], splits["related_case_id"])))
    assert len(pairs) > 300
    assert found[~exempt.to_numpy()].mean() >= 0.95
    assert found.mean() >= 0.85  # all pairs, the exempt ones included
    assert len(splits) <= 1.05 * found.sum()  # few flags that are not injected splits
    hospitals = screens.hospitals.set_index("hospital_id")
    flagged = set(hospitals.index[hospitals["upcoding_flag"]])
    upcoding = set(region.upcoding_hospitals)
    assert len(flagged & upcoding) >= 0.9 * len(upcoding)
    assert len(flagged - upcoding) <= 0.05 * (len(hospitals) - len(upcoding))


def test_dipsim_screen_writes_flags_hospitals_and_a_manifest_that_adds_up(tmp_path, capsys):
    import json

    from dipsim.cli import main
    from dipsim.synth import synthesize_region

    synthesize_region(tmp_path / "region", cases=20_000, hospitals=12, seed=3)
    out = tmp_path / "screens"
    assert main(["screen", str(tmp_path / "region" / "cases"), "-o", str(out), "-q"]) == 0
    line = capsys.readouterr().out
    assert "rows read 20,000 = accepted 20,000 + rejected 0" in line and "split_readmission" in line
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    flags = pd.read_csv(out / "flags.csv", encoding="utf-8-sig")
    hospitals = pd.read_csv(out / "hospitals.csv", encoding="utf-8-sig")
    assert manifest["flags"] == {s: int((flags["screen"] == s).sum()) for s in manifest["flags"]}
    assert hospitals["cases"].sum() == 20_000 and len(manifest["inputs"]) == 12
    for screen, count in manifest["flags"].items():
        assert hospitals[screen].sum() == count
    assert flags["reason"].notna().all()
