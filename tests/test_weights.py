"""Published DRG weight tables and RW calibration from costs."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from dipsim.io import InputError
from dipsim.weights import calibrate_weights, load_published_weights

TABLE = (
    "DRG编码,DRG名称,RW,单议病组,二级医院系数,支付标准（三级职工）,支付标准（三级居民）\n"
    "AA19,心脏移植,,是,,,\n"
    "GB29,消化系统其他手术,2.1345,,0.9,21000.50,19000\n"
    "ZZ15,多发性重要创伤无手术,按项目据实支付,,,,\n"
)


def test_gb18030_table_with_levels_insurance_and_flags(tmp_path):
    path = tmp_path / "city.csv"
    path.write_bytes(TABLE.encode("gb18030"))
    weights = load_published_weights(path)
    groups = weights.groups.set_index("drg")
    assert groups.loc["GB29", "rw"] == 2.1345
    assert np.isnan(groups.loc["AA19", "rw"]) and groups.loc["AA19", "special_review"]
    assert groups.loc["ZZ15", "rw_note"] == "按项目据实支付"
    standards = weights.attributes.query("kind == 'payment_standard' and drg == 'GB29'")
    assert sorted(zip(standards["level"], standards["insurance_type"], standards["value"])) == [
        ("三级", "employee", "21000.50"), ("三级", "resident", "19000")]
    (coefficient,) = weights.attributes.query("kind == 'coefficient'").itertuples()
    assert (coefficient.drg, coefficient.level, coefficient.value) == ("GB29", "二级", "0.9")


def test_conflicting_duplicate_codes_are_reported_with_rows(tmp_path):
    path = tmp_path / "dup.csv"
    path.write_text("DRG编码,DRG名称,RW\nDR13,甲,1.45\nGB29,乙,2.0\nDR13,丙,0.71\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"DR13 \(rows 1, 3\)"):
        load_published_weights(path)


def test_missing_rw_column_is_an_input_error_unless_named(tmp_path):
    path = tmp_path / "points.csv"
    path.write_text("DRG编码,DRG名称,标准分值\nGB29,乙,856.3\n", encoding="utf-8")
    with pytest.raises(InputError, match="no DRG code or RW column"):
        load_published_weights(path)
    assert load_published_weights(path, rw_column="标准分值").rw()["GB29"] == 856.3


def test_real_yancheng_table(shared_reference):
    path = shared_reference / "weights" / "盐城2023.csv"
    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    weights = load_published_weights(path)
    assert len(weights.groups) == len(rows)
    assert int(weights.groups["rw"].notna().sum()) == sum(1 for r in rows if r["RW"].strip())
    assert int(weights.groups["special_review"].sum()) == sum(1 for r in rows if r["单议病组"].strip() == "是")


def test_calibration_by_hand():
    # Group A: 100, 200, 300 (IQR bounds 0..400 keep all) -> mean 200.
    # Group B: four stays of 1000 and one of 100000 (IQR 0: the outlier is trimmed) -> mean 1000.
    # Overall trimmed mean (100 + 200 + 300 + 4 x 1000) / 7 = 4600 / 7; ungroupable and cost-less stays ignored.
    drg = ["A", "A", "A", "B", "B", "B", "B", "B", "0000", "A"]
    cost = [100, 200, 300, 1000, 1000, 1000, 1000, 100000, 50, np.nan]
    table = calibrate_weights(drg, cost).set_index("drg")
    assert table.loc["A", "rw"] == pytest.approx(200 * 7 / 4600, rel=1e-12)
    assert table.loc["B", "rw"] == pytest.approx(1000 * 7 / 4600, rel=1e-12)
    assert table.loc["B", ["cases", "cases_used"]].tolist() == [5, 4]
    assert "0000" not in table.index


def test_calibration_without_trimming_is_the_plain_ratio():
    table = calibrate_weights(["A", "B", "B"], [300.0, 100.0, 200.0], trim="none").set_index("drg")
    assert table["rw"].to_dict() == pytest.approx({"A": 1.5, "B": 0.75})
    with pytest.raises(ValueError, match="trim must be"):
        calibrate_weights(["A"], [1.0], trim="median")
