"""`dipsim explain SETTLE_DIR --case-id ID`: one case's payment chain in words, each parameter's value on the case's
day (from the terms.json settle writes) and its source; `explain --hospital`'s points add up to hospitals.csv."""

import json

import pandas as pd
import pytest

from dipsim.cli import main
from dipsim.paths import repo_root
from dipsim.policy import PARAMETERS

HIGH = 'outlier.high_ratio={"2025-01-01"=2.0,"2025-07-01"=1.5}'


@pytest.fixture(scope="module")
def settled(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("explain_payment")
    region = tmp / "region"
    assert main(["synth", "--cases", "2000", "--hospitals", "6", "--seed", "5", "-o", str(region), "-q"]) == 0
    out = tmp / "settle"
    assert main(["settle", str(region / "cases"), "--policy", str(repo_root() / "scenarios" / "baseline_drg.toml"),
                 "--hospitals", str(region / "hospitals.parquet"), "--budget-share", "0.6", "-o", str(out),
                 "--set", HIGH, "--set", "review.in_effect=true", "-q"]) == 0
    return out, pd.read_parquet(out / "cases.parquet")


def _explain(capsys, *args) -> tuple[int, str]:
    capsys.readouterr()
    rc = main(["explain", *map(str, args)])
    return rc, capsys.readouterr().out


def test_settle_records_the_terms_it_applied(settled):
    out, _ = settled
    terms = json.loads((out / "terms.json").read_text(encoding="utf-8"))
    by_day = {p["day"]: p["values"] for p in terms["periods"]}
    assert by_day["2025-01-01"]["outlier.high_ratio"] == 2.0 and by_day["2025-07-01"]["outlier.high_ratio"] == 1.5
    assert by_day["2025-07-01"]["payment.drg_points_per_rw"] == 100.0
    assert terms["settlement"]["review.in_effect"] is True
    assert "terms.json" in json.loads((out / "manifest.json").read_text(encoding="utf-8"))["outputs"]


def test_a_high_outlier_after_july_names_the_new_ratio_and_its_source(settled, capsys):
    out, cases = settled
    after = cases[(cases["outlier"] == "high") & (cases["policy_day"].astype(str) == "2025-07-01")]
    case = after.iloc[0]
    rc, text = _explain(capsys, out, "--case-id", case["case_id"])
    assert rc == 0
    assert "outlier.high_ratio = 1.5 " in text
    assert PARAMETERS["outlier.high_ratio"].source in text
    # the factor by hand from r: (r - 1.5) + 1, as cases.parquet has it
    assert case["outlier_factor"] == pytest.approx(case["r"] - 1.5 + 1.0)
    assert f"factor {case['outlier_factor']:,.4f}" in text
    assert f"final points = supervised points = {case['case_points']:,.4f}" in text or (
        f"final points {case['case_points']:,.4f}" in text
    )
    # the pool step: point value x final points, in yuan
    pools = pd.read_csv(out / "pools.csv", encoding="utf-8-sig", dtype={"pool": str})
    value = pools.loc[pools["pool"] == case["pool"], "point_value"].iloc[0]
    assert f"{value * case['case_points']:,.4f} yuan" in text


def test_a_case_before_july_names_the_old_ratio(settled, capsys):
    out, cases = settled
    case = cases[cases["policy_day"].astype(str) == "2025-01-01"].iloc[0]
    rc, text = _explain(capsys, out, "--case-id", case["case_id"])
    assert rc == 0 and "outlier.high_ratio = 2 " in text and "outlier.high_ratio = 1.5" not in text


def test_explain_hospital_final_points_equal_hospitals_csv(settled, capsys):
    out, cases = settled
    hospitals = pd.read_csv(out / "hospitals.csv", encoding="utf-8-sig", dtype={"hospital_id": str, "pool": str})
    rc, text = _explain(capsys, out, "--hospital", "H0001")
    assert rc == 0
    for _, row in hospitals[hospitals["hospital_id"] == "H0001"].iterrows():
        mine = cases[(cases["hospital_id"] == "H0001") & (cases["pool"] == row["pool"])]
        final = sum(mine["case_points"].tolist())  # plain Python sum of the cases' final points
        assert round(final, 4) == pytest.approx(row["points"], abs=1e-4)
        assert f"final points: {final:,.4f} = hospitals.csv points {row['points']:,.4f}" in text
        priced, supervised = sum(mine["priced_points"].tolist()), sum(mine["supervised_points"].tolist())
        assert f"{priced:,.4f} {supervised - priced:+,.4f} = {supervised:,.4f}" in text
        assert f"{supervised:,.4f} {final - supervised:+,.4f} = {final:,.4f}" in text
    assert "MISMATCH" not in text


def test_unknown_case_and_not_a_settle_folder(settled, tmp_path, capsys):
    from dipsim.io.errors import InputError
    from dipsim.payment.explain import explain_case

    out, _ = settled
    with pytest.raises(InputError, match="no case"):
        explain_case(out, "NO-SUCH-CASE")
    with pytest.raises(InputError, match="not a `dipsim settle` output"):
        explain_case(tmp_path, "X")
    assert _explain(capsys, out, "--case-id", "NO-SUCH-CASE")[0] == 1
