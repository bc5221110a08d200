"""The DIP auxiliary catalogue on hand-made cases; CCI weights from grouper_tables/dip/charlson_icd10.csv (Quan 2005
ICD-10 codes, Charlson weights): I21 MI 1, E11.2 diabetes with complications 2 (E11.9 without, 1, then dropped),
C78 metastatic 6 (beside a C16 cancer, 2, dropped), N18 renal 2."""

from __future__ import annotations

import pyarrow as pa
import pytest

from dipsim.auxiliary import AuxiliaryCatalog, Band, auxiliary_table, charlson_index, load_auxiliary
from dipsim.io.errors import InputError
from dipsim.paths import repo_root


def cases(rows):
    """rows: (diagnoses, age_years, age_days, discharge_mode, los_days)."""
    return pa.table({
        "case_id": [str(i) for i in range(len(rows))],
        "diagnoses": pa.array([r[0] for r in rows], pa.list_(pa.string())),
        "age_years": pa.array([r[1] for r in rows], pa.int16()),
        "age_days": pa.array([r[2] for r in rows], pa.int32()),
        "discharge_mode": pa.array([r[3] for r in rows], pa.int8()),
        "los_days": pa.array([r[4] for r in rows], pa.int32()),
    })


def test_charlson_index_counts_each_condition_once_and_drops_mild_beside_severe():
    diagnoses = pa.array([
        ["I50.900", "I21.000", "E11.200x001", "E11.900", "C78.000", "C16.900"],  # 1 + 2 + 6 (principal left out)
        ["J18.900", "N18.500", "N18.900"],  # renal once: 2
        ["I21.000", "I50.900"],  # principal MI left out; CHF 1
        [],
    ], pa.list_(pa.string()))
    assert charlson_index(diagnoses).tolist() == [9, 2, 1, 0]
    assert charlson_index(diagnoses, include_principal=True).tolist() == [10, 2, 2, 0]


def test_categories_and_the_product_of_factors():
    table = cases([
        (["I50.900", "I21.000", "E11.200x001", "C78.000"], 70, None, 5, 2),  # 66+, IV-短, CCI 1+2+6, 转移
        (["C16.900"], 5, None, 1, 5),  # 1-6, I, CCI 0, 恶性肿瘤
        (["J18.900", "N18.500"], 0, 20, 1, 3),  # 0-28 天, MCC (N18.500), CCI 2
        (["J18.900"], None, None, 1, 1),  # no age: no band, factor 1
    ])
    aux = load_auxiliary(repo_root() / "examples" / "dip_auxiliary.toml")
    out = auxiliary_table(table, aux).to_pylist()
    assert [(o["age_band"], o["severity"], o["cci"], o["cci_band"], o["tumour"]) for o in out] == [
        ("66岁及以上", "IV-短", 9, ">=5", "转移"), ("1-6岁", "I", 0, "0", "恶性肿瘤"),
        ("0-28天", "III", 2, "1-2", "无"), ("", "I", 0, "0", "无")]
    assert out[0]["aux_factor"] == pytest.approx(1.03 * 0.8 * 1.25 * 1.10)
    assert out[1]["aux_factor"] == pytest.approx(1.02 * 1.0 * 0.95 * 1.05)
    assert out[2]["aux_factor"] == pytest.approx(1.10 * 1.12 * 1.0 * 1.0)
    assert out[3]["aux_factor"] == pytest.approx(0.95)
    assert all(o["aux_factor"] == 1.0 for o in auxiliary_table(table).to_pylist())  # defaults: all 1.0


def test_max_instead_of_product():
    aux = AuxiliaryCatalog(combine="max", cci=(Band("0", max_cci=0, factor=0.9), Band("1+", factor=1.3)))
    out = auxiliary_table(cases([(["J18.900", "N18.500"], 40, None, 1, 3)]), aux).to_pylist()[0]
    assert out["aux_factor"] == 1.3


def test_a_bad_auxiliary_file_is_an_input_error(tmp_path):
    bad = tmp_path / "aux.toml"
    bad.write_text("[severity]\nV = 2.0\n", encoding="utf-8")
    with pytest.raises(InputError, match="unknown classes"):
        load_auxiliary(bad)
    bad.write_text("combine = 'sum'\n", encoding="utf-8")
    with pytest.raises(InputError, match="combine"):
        load_auxiliary(bad)
