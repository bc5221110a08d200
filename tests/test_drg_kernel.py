"""The Numba DRG kernel (dipsim.grouping.kernels via drg.group_table) against the plain-Python reference grouper.

Random cases are built from the scheme's own lists, so that every rule is reached: principal diagnoses from the MDC
tables (P, Y and Z included), ADRG lists and exclusion tables; secondaries from the MCC / CC lists, exclusion tables
and trauma sites; procedures from the ADRG lists and the OR / QY lists; ages, birth weights and ventilation hours
around the thresholds; and codes the scheme does not know, empty codes and nulls.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dipsim.grouping.compiled import compile_scheme
from dipsim.grouping.drg import encode_table, group_encoded, group_table
from dipsim.grouping.reference import UNGROUPABLE, Case, group_case
from dipsim.grouping.tables import load_scheme

from case_tables import grouping_table

SCHEMES = ("chs-drg-1.1", "chs-drg-1.1-beijing")
UNKNOWN_DX = ["X99.999x999", "K35.800x999"]
UNKNOWN_PX = ["99.9999x999", "47.0900x999"]


class Pools:
    """Sorted code pools of one scheme (sorted so that hypothesis draws are reproducible)."""

    def __init__(self, scheme):
        s = scheme
        self.scheme = s
        by_mdc: dict[str, set[str]] = {}
        for code, mdcs in s.principal_mdcs.items():
            for m in mdcs:
                by_mdc.setdefault(m, set()).add(code)
        self.principal_by_mdc = [sorted(by_mdc[m]) for m in s.mdc_order if m in by_mdc]
        self.principal_of = {m: sorted(codes) for m, codes in by_mdc.items()}
        self.pre_mdc = [sorted(by_mdc[m]) for m in ("P", "Y", "Z") if m in by_mdc]
        self.newborn = sorted(by_mdc.get("P", ()))
        # principal diagnoses of an MDC that none of its medical ADRGs names: no ADRG may take them
        orphans = set()
        for m, codes in by_mdc.items():
            named = set()
            for a in s.adrgs_of(m):
                if a.kind == "medical":
                    for codes_of_list in a.lists.values():
                        named |= codes_of_list
            orphans |= codes - named
        # ... and of those, the ones the reference indeed leaves without an ADRG when alone (status 3)
        self.orphans = sorted(c for c in orphans if "no ADRG of" in group_case(Case([c]), s).reason)
        self.adrgs = list(s.adrgs.values())
        self.adrg_lists = [[(name, sorted(codes)) for name, codes in sorted(a.lists.items())] for a in self.adrgs]
        self.banded = [i for i, a in enumerate(self.adrgs) if a.bands]
        self.mcc = sorted(s.mcc)
        self.cc = sorted(s.cc)
        self.exclusion_tables = sorted(s.exclusions)
        self.exclusions = {t: sorted(c) for t, c in s.exclusions.items()}
        self.sites = sorted(s.mdcz_sites)
        self.or_px = sorted(s.or_procedures)
        self.qy_px = sorted(s.qy_procedures)


_POOLS: dict[str, Pools] = {}


def with_qy(name: str):
    """The scheme with its xQY rule on: the kernel must get QY right wherever a city switches it on."""
    return load_scheme(name, qy=True)


def pools(name: str) -> Pools:
    if name not in _POOLS:
        _POOLS[name] = Pools(with_qy(name))
    return _POOLS[name]


def _reference_status(g) -> int:
    if g.drg != UNGROUPABLE:
        return 0
    for status, words in ((1, "no principal diagnosis"), (2, "is in no MDC"), (3, "no ADRG of"),
                          (5, "has no DRG for this age / length of stay"), (4, "has no DRG")):
        if words in g.reason:
            return status
    raise AssertionError(f"unknown reason {g.reason!r}")


@st.composite
def cases(draw, p: Pools):
    def pick(values: list):
        # an index rather than st.sampled_from: hypothesis labels a sampled_from strategy by its whole list
        return values[draw(st.integers(0, len(values) - 1))]

    adrg_i = draw(st.integers(0, len(p.adrgs) - 1))
    if p.banded and draw(st.integers(0, 4)) == 0:  # an ADRG whose DRGs are split by age or stay (Beijing)
        adrg_i = pick(p.banded)
    lists = p.adrg_lists[adrg_i]

    def from_adrg(dx: bool) -> str | None:
        names = [(n, c) for n, c in lists if c and ((n in ("dx", "any_dx", "other_dx")) == dx)]
        if not names:
            return None
        _, codes = names[draw(st.integers(0, len(names) - 1))]
        return pick(codes)

    def principal() -> str | None:
        source = draw(st.integers(0, 12))
        if source in (10, 12):
            return pick(pick(p.pre_mdc))
        if source == 11:
            return pick(p.orphans)
        if source <= 3:  # the ADRG's own diagnoses, or (a procedure-only rule) its MDC's
            return from_adrg(True) or pick(p.principal_of.get(p.adrgs[adrg_i].mdc) or p.principal_by_mdc[0])
        if source <= 6:
            table = pick(p.principal_by_mdc)
            return pick(table)
        if source == 7:
            return pick(p.exclusions[pick(p.exclusion_tables)])
        if source == 8:
            return pick(p.sites)
        return pick([*UNKNOWN_DX, "", None])

    def secondary() -> str | None:
        source = draw(st.integers(0, 7))
        if source == 0:
            return pick(p.mcc)
        if source == 1:
            return pick(p.cc)
        if source == 2:
            return pick(p.exclusions[pick(p.exclusion_tables)])
        if source <= 4:
            return pick(p.sites)
        if source == 5:
            return from_adrg(True) or pick(p.mcc)
        if source == 6:
            return pick(pick(p.principal_by_mdc))
        return pick([*UNKNOWN_DX, "", None])

    def procedure() -> str | None:
        source = draw(st.integers(0, 5))
        if source <= 2:
            return from_adrg(False) or pick(p.or_px)
        if source == 3:
            return pick(p.or_px)
        if source == 4:
            return pick(p.qy_px)
        return pick([*UNKNOWN_PX, "", None])

    n_dx = draw(st.integers(0, 6))
    diagnoses = ([principal()] if n_dx else []) + [secondary() for _ in range(max(n_dx - 1, 0))]
    if n_dx and draw(st.integers(0, 4)) == 0:  # the principal again among the secondaries
        diagnoses.append(diagnoses[0])
    procedures = [procedure() for _ in range(draw(st.integers(0, 4)))]
    # numeric fields: pick a band first (None often), then a value in it, so that thresholds are hit often
    age_days = pick([None, None, (0, 28), (27, 30), (355, 375), (0, 40000)])
    age_days = age_days if age_days is None else draw(st.integers(*age_days))
    if diagnoses and draw(st.integers(0, 7)) == 0:  # a newborn or infant with an MDCP principal diagnosis
        diagnoses[0] = pick(p.newborn)
        age_days = draw(st.integers(0, 370))
    age_years = pick([None, None, 0, 0, 1, (2, 99)])
    age_years = draw(st.integers(*age_years)) if isinstance(age_years, tuple) else age_years
    weight = pick([None, None, 0, 999, 1499, 1500, 1999, 2000, 2499, 2500, 4000, (0, 5000)])
    weight = draw(st.integers(*weight)) if isinstance(weight, tuple) else weight
    hours = pick([None] * 8 + [math.nan, 0.0, 95.0, 95.9, 96.0, 96.1, 500.0])
    sex = pick([0, 1, 2, 9])
    los = pick([None, None, None, 0, 1, 2, 5, 6, 7, 12, 13, 14, 15, (0, 60)])  # around the Beijing stay bands
    los = draw(st.integers(*los)) if isinstance(los, tuple) else los
    return Case(diagnoses, procedures, sex, age_years, age_days, weight, hours, los)



EXAMPLES = {"chs-drg-1.1": 0, "chs-drg-1.1-beijing": 0}  # cases checked, reported by -s / on failure
REACHED: dict[str, set] = {"chs-drg-1.1": set(), "chs-drg-1.1-beijing": set()}  # outcomes the random cases hit


def _check_batch(name: str, batch: list[Case]) -> None:
    scheme = with_qy(name)
    table = grouping_table(batch)
    out = group_table(table, scheme, chunk_size=7).to_pylist()  # small chunks: the chunking is exercised too
    status = group_encoded(encode_table(table, scheme), scheme).status
    for i, (case, got) in enumerate(zip(batch, out)):
        want = group_case(case, scheme)
        assert (got["drg"], got["adrg"], got["mdc"], got["cc_level"], got["reason"], int(status[i])) == (
            want.drg, want.adrg, want.mdc, want.cc_level, want.reason, _reference_status(want)), (case, want.trace)
        REACHED[name].update({("status", int(status[i])), ("cc", got["cc_level"])})
        if any(step.startswith(("age ", "stay ")) for step in want.trace):
            REACHED[name].add("band")
        if got["mdc"] in ("A", "P", "Y", "Z") or got["drg"].endswith("QY"):
            REACHED[name].add(got["drg"][1:] if got["drg"].endswith("QY") else got["mdc"])
    EXAMPLES[name] += len(batch)


@pytest.mark.parametrize("name, examples", [("chs-drg-1.1", 220), ("chs-drg-1.1-beijing", 100)])
def test_kernel_agrees_with_the_reference_on_random_cases(name, examples):
    p = pools(name)

    @settings(max_examples=examples, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(st.lists(cases(p), min_size=5, max_size=40))
    def check(batch):
        _check_batch(name, batch)

    check()
    # Status 3 (no ADRG takes the case) is rare among Beijing's random cases: 0 to ~40 in 860, depending on
    # Hypothesis's draws, which shift with the project's source (its constants pool). Principals that no ADRG
    # takes when alone make sure the kernel is checked there whatever the draws.
    _check_batch(name, [Case([code]) for code in p.orphans[:5]])
    print(f"{name}: {EXAMPLES[name]} random cases agree with the reference; reached {sorted(map(str, REACHED[name]))}")
    # every status but 4 (both schemes give every ADRG a DRG for every CC level) and 5, every CC level, every
    # pre-MDC, QY (status 3 through the orphans above). Age / stay bands (Beijing) are reached in some runs only:
    # the hand-made cases below check them.
    wanted = {("status", s) for s in range(4)} | {("cc", c) for c in range(3)} | {"A", "P", "Y", "Z", "QY"}
    assert wanted <= REACHED[name], wanted - REACHED[name]


def test_kernel_reaches_every_outcome():
    """The random cases above are only useful if they reach pre-MDCs, QY, every status and every CC level."""
    scheme = with_qy("chs-drg-1.1")
    batch = [
        Case(["J18.900"], ventilation_hours=96),  # AH1 by ventilation
        Case(["P07.200", "K92.210"], age_years=0, age_days=3, birth_weight_g=1600),  # PS21
        Case(["B20.000x001"]),  # MDCY
        Case(["S06.000", "S27.000"]),  # MDCZ
        Case(["K92.210"], procedures=["81.5100"]),  # GQY
        Case(["J18.900", "J96.000"]),  # MCC
        Case(["J95.000", "J96.000"]),  # MCC cancelled by table 109
        Case([]),
        Case(["A06.800x004+N51.2*"], sex=2),  # male MDC for a woman: no MDC
        Case(["X99.999x999"]),  # unknown principal
        Case([None, "J96.000"]),
    ]
    out = group_table(grouping_table(batch), scheme).to_pylist()
    assert group_table(grouping_table(batch[4:5])).to_pylist()[0]["drg"] == "GS15"  # QY off, as the national list is
    for case, got in zip(batch, out):
        want = group_case(case, scheme)
        assert (got["drg"], got["adrg"], got["mdc"], got["cc_level"], got["reason"]) == (
            want.drg, want.adrg, want.mdc, want.cc_level, want.reason)
    assert [g["adrg"] for g in out[:5]] == ["AH1", "PS2", out[2]["adrg"], "ZZ1", "GQY"]
    assert out[2]["mdc"] == "Y" and out[4]["mdc"] == "G" and out[4]["adrg"] == "GQY"
    assert out[7]["reason"] == "no principal diagnosis" and out[10]["reason"] == "no principal diagnosis"
    assert out[9]["reason"] == "principal diagnosis X99.999x999 is in no MDC"


def test_kernel_follows_the_beijing_age_and_stay_bands():
    """92.2200 is an RC1 radiotherapy procedure (bands by stay only), C45.706 an MDCR principal diagnosis."""
    scheme = load_scheme("chs-drg-1.1-beijing")
    batch = [Case(["C45.706"], ["92.2200"], los_days=los) for los in (None, 0, 1, 4, 6, 12, 13, 40)]
    out = group_table(grouping_table(batch), scheme).to_pylist()
    assert [g["drg"] for g in out] == ["0000", "RC18", "RC18", "RC16", "RC14", "RC14", "RC12", "RC12"]
    assert out[0]["reason"] == "ADRG RC1 has no DRG for this age / length of stay"
    for case, got in zip(batch, out):
        want = group_case(case, scheme)
        assert (got["drg"], got["reason"]) == (want.drg, want.reason)


def _dictionary_lists(column: pa.ChunkedArray) -> pa.Array:
    """list<string> -> list<dictionary<string>>, as validated Parquet read with dictionary_codes gives it."""
    lists = column.combine_chunks()
    return pa.ListArray.from_arrays(lists.offsets, pc.dictionary_encode(lists.values), mask=lists.is_null())


def test_dictionary_encoded_code_lists_group_the_same():
    batch = [Case(["J18.900", "J96.000", ""], ["81.5100", None]), Case([None, "J96.000"]), Case([]),
             Case(["X99.999x999"]), Case(["P07.200", "K92.210"], age_years=0, age_days=3, birth_weight_g=1600),
             Case(["K92.210"], procedures=["81.5100"])]
    table = grouping_table(batch)
    coded = table.set_column(1, "diagnoses", _dictionary_lists(table["diagnoses"]))
    coded = coded.set_column(2, "procedures", _dictionary_lists(table["procedures"]))
    assert pa.types.is_dictionary(coded.schema.field("diagnoses").type.value_type)
    assert group_table(coded, with_qy("chs-drg-1.1"), chunk_size=4).equals(group_table(table, with_qy("chs-drg-1.1")))


def test_group_table_edge_inputs():
    empty = grouping_table([])
    assert group_table(empty).num_rows == 0
    # only diagnoses and case_id: every other column counts as missing
    minimal = pa.table({"case_id": ["a", "b"], "diagnoses": pa.array([["J18.900"], None], pa.list_(pa.string()))})
    out = group_table(minimal).to_pydict()
    assert out["drg"] == ["ES35", "0000"] and out["reason"] == ["", "no principal diagnosis"]
    assert out["cc_level"] == [0, 0]


def test_compiled_layout_is_consistent():
    c = compile_scheme(load_scheme("chs-drg-1.1"))
    assert len(c.dx_mdc_mask) == len(c.dx_codes) and len(c.or_px) == len(c.px_codes)
    assert c.prog_offsets[-1] == len(c.prog) and c.list_offsets[-1] == len(c.list_codes)
    for lo, hi in zip(c.list_offsets[:-1], c.list_offsets[1:]):
        assert np.all(np.diff(c.list_codes[lo:hi]) > 0)
    assert list(c.adrg_codes[c.n_adrg:])[:2] == ["AQY", "BQY"]
    assert compile_scheme(load_scheme("chs-drg-1.1")) is c


def test_every_real_case_gets_the_reference_drg(shared_reference):
    from dipsim.io import load_cases

    path = shared_reference / "cases" / "grouped_cases_chs_drg_1.1.csv"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    table = load_cases(path).accepted
    scheme = load_scheme("chs-drg-1.1")
    out = group_table(table, chunk_size=2_000)
    assert out.num_rows == table.num_rows
    assert out["case_id"].to_pylist() == table["case_id"].to_pylist()
    want = [group_case(Case(c["diagnoses"], c["procedures"], c["sex"] or 0, c["age_years"], c["age_days"],
                            c["birth_weight_g"], c["ventilation_hours"]), scheme)
            for c in table.select(["diagnoses", "procedures", "sex", "age_years", "age_days", "birth_weight_g",
                                   "ventilation_hours"]).to_pylist()]
    got = out.to_pydict()
    mismatches = [(i, got["drg"][i], w.drg) for i, w in enumerate(want) if got["drg"][i] != w.drg]
    assert not mismatches, mismatches[:10]
    assert got["reason"] == [w.reason for w in want]
    assert got["cc_level"] == [w.cc_level for w in want]
