"""The paths `dipsim settle` takes for speed (issue 17), each against a plain-Python reference or by hand:

* DIP keys made once per distinct (subcategory, procedure set) and principal codes handled once per distinct
  code (`catalog.key_parts`, `grouping.dip.match_table`): against keys written out in plain Python, and the
  grouper against `match_case` (the plain-Python reference) on random cases with a TCM catalogue;
* `group_dip`'s groups as codes (`GroupedCases.group_array`);
* pools and hospitals coded by Arrow (`case_pool_codes`, `CaseHospitals.of` of an Arrow column);
* cases.parquet written in a thread (`OutputFolder.parquet(background=True)`): its sha256, and its error;
* the kernels' warm-up loading the very signature the real calls use (else Numba would compile a second one).
"""

from __future__ import annotations

import functools
import hashlib
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dipsim.catalog import (
    CATALOG_SCHEMA,
    KEYS_SCHEMA,
    KIND_TREATMENT,
    TREATMENTS,
    UNKNOWN_KIND_TREATMENT,
    CatalogOptions,
    key_parts,
    principal_codes,
)
from dipsim.codes import load_icd9
from dipsim.grouping.dip import DipCatalog, group_dip_table, match_case
from dipsim.grouping.grouped_cases import group_dip
from dipsim.io.errors import InputError, OutputError
from dipsim.io.writers import OutputFolder
from dipsim.payment.chain import case_pool_codes, case_pools
from dipsim.pricing import CaseHospitals
from dipsim.tcm import TcmRule

DX = ["K35.800", "K35.801", "J18.900", "I63.900", "I63.901", "M54.500", None, ""]
PX = ["47.0901", "45.2302", "54.5100", "99.2503", "88.4700", "47.1100", "00.0000x999", None, ""]


@functools.lru_cache(maxsize=1)
def kinds() -> dict[str, str]:
    d = load_icd9()
    return dict(zip(d.codes.to_pylist(), d.table["kind"]))


def reference_parts(diagnoses, procedures, procedure_kinds=None) -> dict:
    """A case's key parts written out: the principal (first code, "" without one) cut to 5 and 3 characters, the
    sorted distinct counted procedure codes, the treatment of the highest kind (an unknown code: 治疗性操作)."""
    principal = (diagnoses[0] or "") if diagnoses else ""
    kind = kinds()
    codes = sorted({c for c in procedures or [] if c and (procedure_kinds is None
                                                          or kind.get(c, "") in procedure_kinds)})
    treatment = max([KIND_TREATMENT.get(kind.get(c) or "", UNKNOWN_KIND_TREATMENT) for c in codes], default=0)
    return {"principal": principal, "diagnosis": principal[:5], "procedures": "+".join(codes),
            "treatment": treatment, "key": f"{principal[:5]}/{'+'.join(codes)}",
            "comprehensive": f"{principal[:3]}/{TREATMENTS[treatment]}"}


@st.composite
def rows(draw, max_size=25):
    out = []
    for _ in range(draw(st.integers(0, max_size))):
        dx = draw(st.one_of(st.none(), st.lists(st.sampled_from(DX), max_size=3)))
        px = draw(st.one_of(st.none(), st.lists(st.sampled_from(PX), max_size=5)))
        cost = draw(st.one_of(st.none(), st.sampled_from([5_000.0, 9_000.0, 12_000.0, 13_500.0]),
                              st.floats(100, 50_000)))
        out.append((dx, px, cost, draw(st.booleans())))
    return out


def table(cases) -> pa.Table:
    return pa.table({
        "case_id": [str(i) for i in range(len(cases))],
        "diagnoses": pa.array([c[0] for c in cases], pa.list_(pa.string())),
        "procedures": pa.array([c[1] for c in cases], pa.list_(pa.string())),
        "total_cost": pa.array([c[2] for c in cases], pa.float64()),
        "tcm_treated": pa.array([c[3] for c in cases], pa.bool_()),
    })


@settings(max_examples=80, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(rows(), st.sampled_from([None, ("手术", "介入治疗"), ("诊断性操作",)]))
def test_key_parts_agree_with_keys_written_out(cases, procedure_kinds):
    t = table(cases)
    parts = key_parts(t, CatalogOptions(procedure_kinds=procedure_kinds))
    want = [reference_parts(c[0], c[1], procedure_kinds) for c in cases]
    assert principal_codes(t["diagnoses"]).to_pylist() == [w["principal"] for w in want]
    for name in ("diagnosis", "procedures", "key", "comprehensive"):
        assert getattr(parts, name).to_pylist() == [w[name] for w in want], name
    assert parts.treatment.tolist() == [w["treatment"] for w in want]


GROUPS = [
    # group_id, kind, diagnosis, procedures, treatment, points, mean_cost
    ("K35.8/47.0901", "core", "K35.8", "47.0901", "相关手术", 800.0, 12_000.0),
    ("K35.8/45.2302+47.0901", "core", "K35.8", "45.2302+47.0901", "相关手术", 1000.0, 15_000.0),
    ("K35.8/54.5100", "core", "K35.8", "54.5100", "相关手术", 700.0, 9_000.0),
    ("J18.9/", "core", "J18.9", "", "保守治疗", 400.0, 5_000.0),
    ("I63.9/", "core", "I63.9", "", "保守治疗", 900.0, 11_000.0),
    ("M54.5/99.2503", "core", "M54.5", "99.2503", "治疗性操作", 300.0, 3_000.0),
    ("K35/相关手术", "comprehensive", "K35", "", "相关手术", 900.0, 11_000.0),
    ("J18/治疗性操作", "comprehensive", "J18", "", "治疗性操作", 450.0, None),
    ("TCM/I63.9", "tcm", "I63.9", "", "中医", 900.0, 6_500.0),
]


def tcm_catalog() -> DipCatalog:
    columns = list(zip(*GROUPS))
    n = len(GROUPS)
    groups = pa.table({
        "group_id": columns[0], "kind": columns[1], "diagnosis": columns[2], "procedures": columns[3],
        "treatment": columns[4], "name": [""] * n, "points": columns[5], "cases": [100] * n,
        "cases_used": [100] * n, "mean_cost": columns[6], "cv_cost": [0.1] * n}, schema=CATALOG_SCHEMA)
    keys = [(g[0], g[0], 100) for g in GROUPS if g[1] == "core"] + [("K35.8/47.0901+88.4700", "K35/相关手术", 3)]
    keys_table = pa.table(dict(zip(KEYS_SCHEMA.names, map(list, zip(*keys)))), schema=KEYS_SCHEMA)
    rule = TcmRule(diseases=("I63.9", "M54.5"))  # M54.5 is listed but has no TCM group in this catalogue
    return DipCatalog(groups=groups, options=CatalogOptions(tcm=rule), source="hand", keys=keys_table)


@settings(max_examples=80, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(rows())
def test_the_grouper_agrees_with_the_reference_with_a_tcm_catalogue(cases):
    catalog = tcm_catalog()
    t = table(cases)
    out = group_dip_table(t, catalog).to_pylist()
    grouped = group_dip(t, catalog)
    mean = {g[0]: g[6] for g in GROUPS}
    for i, (got, case) in enumerate(zip(out, cases)):
        parts = reference_parts(case[0], case[1])
        tcm = f"TCM/{parts['diagnosis']}" if case[3] and parts["diagnosis"] in ("I63.9", "M54.5") else ""
        m = match_case(parts["diagnosis"], [p for p in parts["procedures"].split("+") if p], parts["treatment"],
                       case[2], catalog, tcm_group=tcm)
        assert (got["dip_group"], got["match"], got["reason"]) == (m.group, m.match, m.reason), (case, m.steps)
        assert got["dip_points"] == m.points or (got["dip_points"] is None and m.points is None)
        # what the payment chain reads
        assert grouped.group[i] == m.group
        assert grouped.group_points[i] == (m.points if m.points is not None else 0.0)
        want_cost = mean.get(m.group) if m.group else None
        assert (np.isnan(grouped.standard_cost[i]) if want_cost is None
                else grouped.standard_cost[i] == want_cost)
        assert grouped.tcm_group_case[i] == (m.match == "tcm")
        assert grouped.tcm_treated[i] == case[3]
    assert grouped.group_array().to_pylist() == [o["dip_group"] for o in out]


def test_pools_are_coded_once_per_distinct_pool_and_insurance_type():
    cases = pa.table({"pool": pa.chunked_array([["990100", "990100", "a-b"], ["a", "990200", "990100"]]),
                      "insurance_type": pa.chunked_array([["employee", "resident", "c"],
                                                          ["b-c", "employee", "employee"]])})
    codes, names = case_pool_codes(cases)
    assert [names[c] for c in codes] == ["990100-employee", "990100-resident", "a-b-c", "a-b-c",
                                         "990200-employee", "990100-employee"]
    assert sorted(names) == ["990100-employee", "990100-resident", "990200-employee", "a-b-c"]  # one a-b-c
    assert case_pools(cases).tolist() == [names[c] for c in codes]
    blank = pa.table({"pool": ["990100", None, "", "990100"], "insurance_type": ["employee", "employee", "resident",
                                                                                   None]})
    with pytest.raises(InputError, match=r"^3 case"):
        case_pool_codes(blank)


def test_hospitals_are_coded_by_arrow_in_order_of_first_appearance():
    index = CaseHospitals.of(pa.chunked_array([["H2", "H1"], ["H2", "H3", "H1"]]))
    assert index.codes.tolist() == [0, 1, 0, 2, 1] and index.ids.tolist() == ["H2", "H1", "H3"]
    assert index.codes.dtype == np.int64 and index.ids.dtype == object
    with pytest.raises(InputError, match="1 case"):
        CaseHospitals.of(pa.array(["H1", None]))


def test_a_parquet_file_written_in_the_background_is_in_the_manifest_with_its_sha256(tmp_path):
    import json

    out = OutputFolder(tmp_path / "out")
    t = pa.table({"x": np.arange(1000), "y": ["a"] * 1000})
    out.parquet(t, "cases.parquet", background=True, use_dictionary=["y"])
    out.json({"a": 1}, "terms.json")
    out.manifest({"command": "test"})
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["outputs"] == ["cases.parquet", "terms.json"]
    data = (tmp_path / "out" / "cases.parquet").read_bytes()
    assert manifest["output_sha256"]["cases.parquet"] == hashlib.sha256(data).hexdigest()
    assert pq.read_table(tmp_path / "out" / "cases.parquet").equals(t)


def test_a_failed_background_write_stops_the_manifest(tmp_path):
    out = OutputFolder(tmp_path / "out")
    (tmp_path / "out" / "cases.parquet").mkdir()  # a folder where the file should go: the rename fails
    out.parquet(pa.table({"x": [1, 2]}), "cases.parquet", background=True)
    with pytest.raises(OutputError, match=r"cases\.parquet"):
        out.manifest({"command": "test"})
    assert not (tmp_path / "out" / "manifest.json").exists()


@pytest.mark.skipif(os.environ.get("NUMBA_DISABLE_JIT") == "1", reason="no compiled signatures without the JIT")
def test_the_warm_ups_load_the_signatures_settle_calls():
    """A warm-up with other argument types (a read-only array, another dtype) would make Numba compile a second
    signature: in a fresh process that is seconds, not the cache load it is meant to hide."""
    from dipsim.grouping import dip, dip_kernel
    from dipsim.payment.chain import CaseSet, run_chain
    from dipsim.policy import Policy
    from dipsim.pricing import warm_up
    from dipsim.pricing_kernel import price_cases

    dip.warm_up().join()
    warm_up().join()
    kernels = (dip_kernel.match_cases, price_cases)
    before = [set(k.signatures) for k in kernels]
    cases = table([(["K35.800"], ["47.0901"], 12_000.0, False), (["I63.900"], [], 9_000.0, True)])
    cases = cases.append_column("hospital_id", pa.array(["H1", "H2"])).append_column(
        "pool", pa.array(["990100", "990100"])).append_column("insurance_type", pa.array(["employee", "employee"]))
    hospitals = pa.table({"hospital_id": ["H1", "H2"], "level": ["三级甲等", "二级"], "type": ["综合", "中医"]})
    policy = Policy(values={}).overlay({"budget.total": {"990100-employee": 10_000.0}})
    run_chain(CaseSet.of(cases), group_dip(cases, tcm_catalog()), hospitals, policy)
    assert [set(k.signatures) for k in kernels] == before
    assert all(len(s) == 1 for s in before)


def test_settle_reports_the_region_checks_before_the_grouping_s_own_error(tmp_path, capsys):
    """The cases are grouped in a thread beside the region checks: a failed check is still the error reported (and
    nothing written), a grouping error (no catalogue there) comes after the checks pass."""
    from dipsim.cli import main
    from dipsim.paths import repo_root
    from dipsim.synth import synthesize_region

    synthesize_region(tmp_path / "r", cases=300, hospitals=5, seed=3)
    args = ["settle", str(tmp_path / "r" / "cases"), "--policy", str(repo_root() / "scenarios" / "baseline.toml"),
            "--hospitals", str(tmp_path / "r" / "hospitals.csv"), "--catalog", str(tmp_path / "nowhere"), "-q"]
    assert main([*args, "-o", str(tmp_path / "a")]) == 1  # no budget for the pools, and no catalogue
    err = capsys.readouterr().err
    assert "no budget for pool(s)" in err and "no DIP catalogue" not in err and not (tmp_path / "a").exists()
    assert main([*args, "--budget-share", "0.6", "-o", str(tmp_path / "b")]) == 1
    assert "no DIP catalogue here" in capsys.readouterr().err and not (tmp_path / "b").exists()
