"""The synthetic region generator: schema, exact counts, determinism, money, dates, region mix and ground truth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from dipsim.schema import CASE_SCHEMA, HOSPITAL_LEVELS, HOSPITAL_SCHEMA, HOSPITAL_TYPES
from dipsim.synth import load_patterns, synthesize_region

N = 20_000
H = 30
YEAR = 2025


@pytest.fixture(scope="module")
def region(tmp_path_factory) -> tuple[Path, object, list]:
    out = tmp_path_factory.mktemp("region")
    calls: list[tuple[int, int]] = []
    summary = synthesize_region(out, cases=N, hospitals=H, seed=7, year=YEAR,
                                progress=lambda done, total: calls.append((done, total)))
    return out, summary, calls


@pytest.fixture(scope="module")
def cases(region) -> pd.DataFrame:
    out, _, _ = region
    frames = []
    for f in sorted((out / "cases").glob("discharge_month=*/part-0.parquet")):
        df = pq.read_table(f).to_pandas()
        df["partition"] = f.parent.name.split("=", 1)[1]
        frames.append(df)
    df = pd.concat(frames, ignore_index=True)
    for c in ("admission_date", "discharge_date"):
        df[c] = pd.to_datetime(df[c])
    return df


@pytest.fixture(scope="module")
def hospitals(region) -> pd.DataFrame:
    return pq.read_table(region[0] / "hospitals.parquet").to_pandas()


def case_files(out: Path) -> list[Path]:
    return sorted((out / "cases").glob("discharge_month=*/part-0.parquet"))


def test_twelve_monthly_partitions_each_conforming_to_the_case_schema(region):
    out, _, _ = region
    files = case_files(out)
    assert [f.parent.name for f in files] == [f"discharge_month={YEAR}-{m:02d}" for m in range(1, 13)]
    for f in files:
        schema = pq.read_schema(f)
        assert schema.names == CASE_SCHEMA.names, f
        assert [fld.type for fld in schema] == [fld.type for fld in CASE_SCHEMA], f
        assert pq.ParquetFile(f).metadata.row_group(0).column(0).compression == "ZSTD"


def test_row_total_is_exact_and_case_ids_unique(region, cases):
    _, summary, calls = region
    assert len(cases) == N
    assert sum(summary.cases_by_month.values()) == N
    assert cases["case_id"].is_unique
    assert cases["case_id"].str.fullmatch(rf"S{YEAR}\d{{8}}").all()
    assert calls[-1] == (N, N) and len(calls) == 12
    manifest = json.loads((region[0] / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["counts"]["cases"] == N
    assert sum(v["rows"] for k, v in manifest["files"].items() if k.startswith("cases/")) == N
    assert not list(region[0].glob(".synth-tmp-*")), "temporary folder left behind"


def test_same_seed_gives_identical_files_and_another_seed_differs(tmp_path):
    a = synthesize_region(tmp_path / "a", cases=3_000, hospitals=12, seed=3)
    b = synthesize_region(tmp_path / "b", cases=3_000, hospitals=12, seed=3)
    c = synthesize_region(tmp_path / "c", cases=3_000, hospitals=12, seed=4)
    fa, fb, fc = case_files(a.out_dir), case_files(b.out_dir), case_files(c.out_dir)
    assert len(fa) == 12
    assert [f.read_bytes() for f in fa] == [f.read_bytes() for f in fb]
    assert (a.out_dir / "ground_truth/split_stays.parquet").read_bytes() == (
        b.out_dir / "ground_truth/split_stays.parquet").read_bytes()
    assert [f.read_bytes() for f in fa] != [f.read_bytes() for f in fc]
    ta = pq.read_table(fa[0])
    tc = pq.read_table(fc[0])
    assert not ta.column("total_cost").equals(tc.column("total_cost"))


def test_money_adds_up_to_the_fen(cases):
    total = np.rint(cases["total_cost"].to_numpy() * 100).astype(np.int64)
    fund = np.rint(cases["fund_paid"].to_numpy() * 100).astype(np.int64)
    patient = np.rint(cases["patient_paid"].to_numpy() * 100).astype(np.int64)
    assert (fund + patient == total).all()
    assert (cases["fund_paid"] >= 0).all() and (cases["patient_paid"] >= 0).all() and (total > 0).all()
    assert np.allclose(cases["total_cost"] * 100, total, atol=1e-6)  # already rounded to fen
    ratio = cases["fund_paid"].sum() / cases["total_cost"].sum()
    assert 0.5 < ratio < 0.9
    by_ins = cases.groupby("insurance_type")["fund_paid"].sum() / cases.groupby("insurance_type")["total_cost"].sum()
    assert by_ins["employee"] > by_ins["resident"] + 0.1
    assert 0.30 < (cases["insurance_type"] == "employee").mean() < 0.50


def test_dates_are_in_the_year_and_consistent_with_los_and_partition(cases):
    assert (cases["discharge_date"].dt.year == YEAR).all()
    assert ((cases["discharge_date"] - cases["admission_date"]).dt.days == cases["los_days"]).all()
    assert (cases["los_days"] >= 0).all()
    assert (cases["discharge_date"].dt.strftime("%Y-%m") == cases["partition"]).all()
    monthly = cases.groupby("partition").size()
    assert monthly.min() > N / 12 * 0.6 and monthly.max() < N / 12 * 1.4


def test_hospitals_conform_and_have_a_realistic_mix(region, hospitals, cases):
    out, _, _ = region
    assert pq.read_schema(out / "hospitals.parquet").names == HOSPITAL_SCHEMA.names
    assert [f.type for f in pq.read_schema(out / "hospitals.parquet")] == [f.type for f in HOSPITAL_SCHEMA]
    assert len(hospitals) == H and hospitals["hospital_id"].is_unique
    assert set(hospitals["level"]) <= set(HOSPITAL_LEVELS) and set(hospitals["type"]) <= set(HOSPITAL_TYPES)
    tier = hospitals["level"].str[:2]
    assert (tier == "三级").sum() >= 1 and (tier == "二级").sum() >= 4 and (tier == "一级").sum() > H / 2
    assert (hospitals["type"] == "中医").sum() >= 2
    assert hospitals["coefficient_override"].isna().all() and (hospitals["pool"] == hospitals["pool"].iloc[0]).all()
    csv = (out / "hospitals.csv").read_bytes()
    assert csv.startswith(b"\xef\xbb\xbf") and "卫生院".encode() in csv
    case_tier = cases["hospital_id"].map(hospitals.set_index("hospital_id")["level"].str[:2])
    assert case_tier.notna().all()
    share = case_tier.value_counts(normalize=True)
    assert 0.35 <= share["三级"] <= 0.65
    assert 0.08 <= share["一级"] <= 0.20
    # grassroots hospitals treat cheaper cases
    mean_cost = cases.groupby(case_tier)["total_cost"].mean()
    assert mean_cost["三级"] > 2 * mean_cost["一级"]


def test_tcm_hospitals_treat_far_more_cases_with_tcm(cases, hospitals):
    kind = cases["hospital_id"].map(hospitals.set_index("hospital_id")["type"])
    share = cases.groupby(kind)["tcm_treated"].mean()
    assert 0.4 <= share["中医"] <= 0.7
    assert 0.02 <= share["综合"] <= 0.12
    tcm = cases["tcm_treated"]
    assert (cases.loc[tcm, "tcm_cost"] > 0).all() and (cases.loc[~tcm, "tcm_cost"] == 0).all()
    assert (cases["tcm_cost"] <= cases["total_cost"]).all()


def test_split_stays_are_the_same_patient_and_hospital_within_ten_days(region, cases):
    out, summary, _ = region
    pairs = pq.read_table(out / "ground_truth/split_stays.parquet").to_pandas()
    assert len(pairs) == summary.split_pairs > 20
    by_id = cases.set_index("case_id")
    first, second = by_id.loc[pairs["first_case_id"]], by_id.loc[pairs["second_case_id"]]
    assert (first["patient_id"].to_numpy() == second["patient_id"].to_numpy()).all()
    assert (first["hospital_id"].to_numpy() == pairs["hospital_id"].to_numpy()).all()
    assert (second["hospital_id"].to_numpy() == pairs["hospital_id"].to_numpy()).all()
    assert (first["patient_id"].to_numpy() == pairs["patient_id"].to_numpy()).all()
    gap = (second["admission_date"].to_numpy() - first["discharge_date"].to_numpy()) / np.timedelta64(1, "D")
    assert ((gap >= 1) & (gap <= 10)).all()
    same_dx = [a[0] == b[0] for a, b in zip(first["diagnoses"], second["diagnoses"])]
    assert all(same_dx)
    split_hospitals = pd.read_csv(out / "ground_truth/split_stay_hospitals.csv", encoding="utf-8-sig")
    assert set(pairs["hospital_id"]) <= set(split_hospitals["hospital_id"])
    assert 2 <= len(split_hospitals) <= 4


def test_upcoded_cases_carry_the_added_severity_codes(region, cases, hospitals):
    out, summary, _ = region
    up = pq.read_table(out / "ground_truth/upcoded_cases.parquet").to_pandas()
    assert len(up) == summary.upcoded_cases > 50
    severity = set(load_patterns().severity_codes)
    dx = cases.set_index("case_id").loc[up["case_id"], "diagnoses"]
    for codes, added in zip(dx, up["added_codes"]):
        added = list(added)
        assert 1 <= len(added) <= 2 and set(added) <= severity
        assert list(codes[-len(added):]) == added
        assert len(set(codes)) == len(codes)  # no duplicate diagnosis was created
    up_hospitals = pd.read_csv(out / "ground_truth/upcoding_hospitals.csv", encoding="utf-8-sig")
    assert set(up["hospital_id"]) == set(up_hospitals["hospital_id"])
    assert not set(up_hospitals["hospital_id"]) & set(summary.split_stay_hospitals)
    assert not (hospitals.set_index("hospital_id").loc[up_hospitals["hospital_id"], "type"] == "中医").any()
    at = cases[cases["hospital_id"].isin(up_hospitals["hospital_id"])]
    assert 0.2 <= len(up) / len(at) <= 0.5


def test_readmissions_reuse_patients_at_least_21_days_later(region, cases):
    out, summary, _ = region
    pairs = pq.read_table(out / "ground_truth/split_stays.parquet").to_pandas()
    split_patients = set(pairs["patient_id"])
    repeat = cases[cases["patient_id"].duplicated(keep=False) & ~cases["patient_id"].isin(split_patients)]
    assert 0.03 <= summary.readmissions / N <= 0.09
    assert repeat["patient_id"].nunique() > 100
    repeat = repeat.sort_values(["patient_id", "discharge_date"])
    prev = repeat.groupby("patient_id").shift(1)
    later = prev["discharge_date"].notna()
    gap = (repeat.loc[later, "admission_date"] - prev.loc[later, "discharge_date"]).dt.days
    assert (gap >= 21).all()
    for col in ("hospital_id", "sex", "age_years"):
        assert (repeat.loc[later, col] == prev.loc[later, col]).all()
    assert (prev.loc[later, "discharge_mode"] != 5).all()  # nobody is readmitted after death


def test_patients_newborns_and_sex(cases):
    newborn = cases["age_days"].notna() & (cases["age_days"] < 29)
    assert newborn.sum() > 0
    assert cases.loc[newborn, "birth_weight_g"].between(500, 6000).all()
    assert cases.loc[~newborn, "birth_weight_g"].isna().all()
    assert (cases.loc[cases["age_days"].notna(), "age_years"] == 0).all()
    assert cases.loc[cases["age_years"] >= 1, "age_days"].isna().all()
    assert cases["age_years"].between(0, 110).all()
    pregnancy = cases["diagnoses"].map(lambda d: d[0].startswith("O"))
    assert pregnancy.sum() > 0 and (cases.loc[pregnancy, "sex"] == 2).all()
    assert cases.loc[pregnancy, "age_years"].between(15, 50).all()
    assert cases["sex"].isin([1, 2]).all() and 0.4 < (cases["sex"] == 1).mean() < 0.6
    assert cases["patient_id"].str.fullmatch(r"P[0-9a-f]{16}").all()


def test_outcomes_deaths_transfers_and_ventilation(cases):
    modes = cases["discharge_mode"].value_counts(normalize=True)
    assert set(modes.index) <= {1, 2, 3, 4, 5, 9}
    assert 0.6 < modes[1] < 0.99 and 0.005 < modes[2] + modes[3] < 0.04 and modes[5] > 0
    vent = cases["ventilation_hours"].dropna()
    assert len(vent) > 0 and (vent > 0).all() and (vent >= 96).any()
    los = cases.loc[vent.index, "los_days"].clip(lower=1)
    assert (vent <= los * 24).all()
    assert cases["insurer_drg"].isna().all()
    assert (cases["diagnoses"].map(len) >= 1).all()


def test_small_and_invalid_regions(tmp_path):
    s = synthesize_region(tmp_path / "small", cases=500, hospitals=5, seed=1)
    total = sum(pq.read_metadata(f).num_rows for f in case_files(s.out_dir))
    assert total == 500
    with pytest.raises(ValueError):
        synthesize_region(tmp_path / "bad", cases=500, hospitals=4)
    with pytest.raises(ValueError):
        synthesize_region(tmp_path / "bad", cases=0, hospitals=10)


def test_rerun_replaces_partitions_of_another_year(tmp_path):
    synthesize_region(tmp_path, cases=1_000, hospitals=8, seed=1, year=2024)
    synthesize_region(tmp_path, cases=1_200, hospitals=8, seed=1, year=2025)
    names = sorted(p.name for p in (tmp_path / "cases").iterdir())
    assert names == [f"discharge_month=2025-{m:02d}" for m in range(1, 13)]
    total = sum(pq.read_metadata(f).num_rows for f in case_files(tmp_path))
    assert total == 1_200


def test_pattern_library_ships_without_identifiers():
    p = load_patterns()
    assert p.n > 10_000 and len(p.severity_codes) == 60
    names = pq.read_schema(Path(__file__).resolve().parents[1] / "dipsim/data/patterns.parquet").names
    assert not {"case_id", "patient_id", "病案号"} & set(names)
    assert (p.weight >= 1).all() and np.isfinite(p.cost_mu).all() and (p.los_sd > 0).all()
