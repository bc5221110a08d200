"""A `DrgScheme` flattened into numpy arrays for the Numba kernel (`dipsim.grouping.kernels`).

The compiled form follows `dipsim.grouping.reference` rule by rule; only the representation changes:

* Codes become ids in two vocabularies (``dx_codes``, ``px_codes``): the sorted unique codes that appear anywhere in
  the scheme's tables. A case's codes are encoded with ``pyarrow.compute.index_in``; ``UNKNOWN`` (-1) is a code the
  scheme does not know (it matches nothing), ``MISSING`` (-2) a null or empty code (a missing principal diagnosis).
* Per diagnosis id: ``dx_mdc_mask`` (bit k = the code is in the 主诊表 of ``mdc_codes[k]``), ``dx_secondary``
  rows (MCC / CC exclusion: -1 not an MCC / CC, ``EXCL_ALWAYS`` counts always, else the id of its exclusion table;
  and the code's range of secondary-position lists) and ``dx_site`` (MDCZ trauma site, -1 none).
* Exclusion tables, by principal diagnosis: CSR ``excl_offsets`` / ``excl_tables`` (the ids of the tables that
  hold each diagnosis, sorted; one table each in 1.1), so a case reads its principal's short list once.
* ADRG code lists: CSR ``list_offsets`` / ``list_codes`` (sorted ids, in the dx or px vocabulary by kind) with
  ``list_kind`` (``LIST_*``); each ADRG's logic is a postfix program ``prog`` (op >= 0 pushes "list op holds",
  ``OP_AND`` / ``OP_OR`` combine the top two) sliced by ``prog_offsets``.
* Per ADRG: ``adrg_mdc``, ``adrg_kind``, ``adrg_bounds`` (MDCP weight min/max, age-days min/max, ``NO_BOUND`` for
  none), ``adrg_drg[a, level]``: the DRG id for CC level none / CC / MCC, chosen by the reference's `_choose_drg`
  itself (-1: the ADRG has no DRG for that level), and ``adrg_flags`` (``FLAG_*``: the logic holds on built-ins
  alone without / with an OR procedure; the logic is a single code list that needs one code; the case's principal
  diagnosis in ``dx_principal_mcc`` makes it an MCC here). ``list_min``: per list, how many of the case's codes it
  needs (``[list_min_count]``, 1 by default). DRGs split by a condition (Beijing's age or length of stay; 3.0's age
  band with a CC level, robot-assisted procedures) are bands: CSR ``band_offsets`` per ADRG, ``band_bounds`` (age
  min / max, stay min / max), ``band_cc_mask`` (bit k: CC level k holds), CSR ``band_px_offsets`` /
  ``band_px_codes`` (sorted procedure ids, one of which the case needs; none: no such condition) and ``band_drg``
  (as ``adrg_drg``); the first band that holds replaces ``adrg_drg``.
* Inverted indexes, split by the position the list reads (``dx_principal_*``, ``dx_secondary_ids``,
  ``px_principal_*``, ``px_secondary_*``; a secondary code is looked up only in any_dx / other_dx / any_px lists):
  the lists holding each code, with ``list_owner`` (the ADRG of each list). ADRG ids are the official order, so
  the kernel finds "the first ADRG of the MDC whose rule holds" by looking only at ADRGs that own a list holding
  one of the case's codes (the logic is AND / OR of lists: an ADRG none of whose lists holds can only hold on the
  built-ins, ``mdc_free_offsets`` / ``mdc_free_ids`` per MDC), instead of trying every ADRG of the MDC.
* Per MDC: ``mdc_adrg_hi`` (one past its largest ADRG id: "no ADRG found" in the kernel).
* ``or_px`` / ``qy_px``: booleans over procedure ids (``all_or`` built-in, QY rule).
* Pre-MDC: ``pre_ops`` (``PRE_A`` ...) with their MDC index in ``pre_mdc``, ventilation hours and ADRG, the MDCP
  newborn age, MDCZ's minimum number of sites, and the MDC masks a man (``banned_if_male``) or a woman cannot get.
  ``kernel_tables`` is the tuple of all of these that the kernel takes.

QY groups are ids past the real ones: ADRG ``n_adrg + mdc`` and DRG ``n_drg + mdc`` decode to ``<MDC>QY``.
Strings (codes, reasons) stay here, in ``mdc_codes`` / ``adrg_codes`` / ``drg_codes``, for decoding on the Python side.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from .reference import CC_CC, CC_MCC, CC_NONE, _choose_drg, _list_names
from .tables import Adrg, DrgScheme, list_reads

UNKNOWN = -1  # a code the scheme does not know: matches nothing
MISSING = -2  # a null or empty code

EXCL_NONE = -1  # not an MCC / CC
EXCL_ALWAYS = -2  # an MCC / CC with no exclusion table: counts always

LIST_DX, LIST_PX, LIST_ANY_DX, LIST_OTHER_DX, LIST_ANY_PX, LIST_ALL_OR, LIST_MDCZ_NO_SURGERY = range(7)
_DX_KINDS = (LIST_DX, LIST_ANY_DX, LIST_OTHER_DX)

OP_AND, OP_OR = -1, -2
# adrg_flags: the logic holds with no code list holding, for a case without / with an OR procedure (built-ins);
# the logic is one code list that needs one code (the list found through the inverted index is the answer: no
# search); the ADRG is in [principal_mcc] adrgs (a principal diagnosis in dx_principal_mcc is an MCC there)
FLAG_FREE_NO_OR, FLAG_FREE_WITH_OR, FLAG_SINGLE, FLAG_PRINCIPAL_MCC = 1, 2, 4, 8
CC_MASK_ALL = 7  # band_cc_mask of a band without a CC-level condition
MAX_STACK = 62  # the kernel keeps the logic stack in the bits of an int64

KIND_SURGICAL, KIND_NON_OR, KIND_MEDICAL = 0, 1, 2
_KINDS = {"surgical": KIND_SURGICAL, "non_or": KIND_NON_OR, "medical": KIND_MEDICAL}

PRE_A, PRE_P, PRE_Y, PRE_Z = 0, 1, 2, 3
_PRE_OPS = {"A": PRE_A, "P": PRE_P, "Y": PRE_Y, "Z": PRE_Z}

NO_BOUND = np.iinfo(np.int32).min
_BOUND_KEYS = ("weight_g_min", "weight_g_max", "age_days_min", "age_days_max")


STATUS_GROUPED, STATUS_NO_PRINCIPAL, STATUS_NO_MDC, STATUS_NO_ADRG, STATUS_NO_DRG, STATUS_NO_BAND = range(6)
CC_LEVELS = (CC_NONE, CC_CC, CC_MCC)


def list_kind(name: str) -> int:
    """The kernel's list kind for a list name, as `reference._Facts.in_list` reads it."""
    if name == "all_or":
        return LIST_ALL_OR
    if name == "mdcz_no_surgery":
        return LIST_MDCZ_NO_SURGERY
    return {"dx": LIST_DX, "px": LIST_PX, "any_dx": LIST_ANY_DX, "other_dx": LIST_OTHER_DX,
            "any_px": LIST_ANY_PX}[list_reads(name)]


@dataclass(frozen=True, eq=False)
class CompiledScheme:
    name: str
    scheme: DrgScheme | None  # None when loaded from the disk cache (`scheme_cache`)
    # vocabularies and decoding
    dx_codes: pa.Array
    px_codes: pa.Array
    mdc_codes: np.ndarray  # str, scheme order
    adrg_codes: np.ndarray  # str: n_adrg real ADRGs, then <MDC>QY per MDC
    drg_codes: np.ndarray  # str: n_drg real DRGs (sorted), then <MDC>QY per MDC
    n_adrg: int
    n_drg: int
    invalid_principal: np.ndarray  # str: diagnoses not valid as principal (invalid_principal.csv), for reasons
    # per diagnosis id
    dx_mdc_mask: np.ndarray  # int64
    # one 16-byte row per code for what a secondary diagnosis needs (one cache line, not three):
    # MCC exclusion, CC exclusion (EXCL_*), and its range in dx_secondary_ids
    dx_secondary: np.ndarray  # int32 (n_dx, 4): mcc_excl, cc_excl, lo, hi
    dx_site: np.ndarray  # int32
    dx_principal_mcc: np.ndarray  # bool: principal_mcc.csv (an MCC as principal in the FLAG_PRINCIPAL_MCC ADRGs)
    excl_offsets: np.ndarray  # int64
    excl_tables: np.ndarray  # int32
    excl_names: tuple[str, ...]
    # code lists and logic programs
    list_kind: np.ndarray  # int8
    list_offsets: np.ndarray  # int64
    list_codes: np.ndarray  # int32
    list_min: np.ndarray  # int32: codes the list needs (by position), [list_min_count]; 1 by default
    prog_offsets: np.ndarray  # int64, per ADRG
    prog: np.ndarray  # int32
    # per ADRG
    adrg_mdc: np.ndarray  # int8
    adrg_kind: np.ndarray  # int8
    adrg_bounds: np.ndarray  # int32 (n_adrg, 4)
    adrg_drg: np.ndarray  # int16 (n_adrg, 3)
    adrg_flags: np.ndarray  # int8 FLAG_*: logic holds with no code list (without / with an OR procedure); one list;
    # principal MCC
    # condition bands of DRGs ([drg_conditions]), per ADRG in DRG code order: the first that holds gives the DRGs
    band_offsets: np.ndarray  # int64, n_adrg + 1
    band_bounds: np.ndarray  # int32 (n_band, 4): age_years_min, age_years_max, los_days_min, los_days_max (NO_BOUND)
    band_cc_mask: np.ndarray  # int8 (n_band): bit k = CC level k holds (CC_MASK_ALL: no CC-level condition)
    band_px_offsets: np.ndarray  # int64 (n_band + 1): CSR of band_px_codes
    band_px_codes: np.ndarray  # int32: sorted procedure ids per band (empty: no procedure condition)
    band_drg: np.ndarray  # int16 (n_band, 3): DRG id per CC level, as adrg_drg
    # inverted indexes: code id -> ids of the lists holding it, sorted (so by owner ADRG)
    list_owner: np.ndarray  # int32 per list, -1 for the shared built-ins
    # split by the position a list reads: principal (dx / any_dx, px / any_px), secondary (any_dx / other_dx, any_px)
    dx_principal_offsets: np.ndarray  # int64
    dx_principal_ids: np.ndarray  # int32
    dx_secondary_ids: np.ndarray  # int32, ranges in dx_secondary[:, 2:4]
    px_principal_offsets: np.ndarray
    px_principal_ids: np.ndarray
    px_secondary_offsets: np.ndarray
    px_secondary_ids: np.ndarray
    # per MDC
    mdc_adrg_hi: np.ndarray  # int32: largest + 1 (0 when none)
    mdc_free_offsets: np.ndarray  # int64: CSR of its ADRGs with a FLAG_FREE_*, official order
    mdc_free_ids: np.ndarray  # int32
    # per procedure id
    or_px: np.ndarray  # bool
    qy_px: np.ndarray  # bool
    # pre-MDC and sex
    pre_ops: np.ndarray  # int8
    pre_mdc: np.ndarray  # int8, -1 where the scheme has no such MDC
    pre_mask: np.ndarray  # int64[1]: pre-MDCs, never given by the principal diagnosis alone
    vent_hours_min: np.ndarray  # float64[1], NaN: no ventilation rule
    vent_adrg: np.ndarray  # int32[1], -1: none (or the hours count as a procedure: vent_px)
    vent_px: np.ndarray  # int32[1]: ventilation.mode = "procedure": the procedure id the hours stand for, else -1
    mdcp_age_days_max: np.ndarray  # int32[1]
    mdcp_infant_age_days_max: np.ndarray  # int32[1]: an infant with age in years 0 or missing also enters MDCP
    mdcz_min_sites: np.ndarray  # int32[1]
    banned_if_male: np.ndarray  # int64[1]
    banned_if_female: np.ndarray  # int64[1]

    @property
    def mdc_index_a(self) -> int:
        """Index of MDCA (the pre-MDC step that reads ADRG lists), -1 when the pre-MDC order has no A."""
        hits = [int(m) for op, m in zip(self.pre_ops, self.pre_mdc) if op == PRE_A and m >= 0]
        return hits[0] if hits else -1

    @property
    def kernel_tables(self) -> tuple:
        """The tuple `kernels.group_cases` takes after the case arrays (unpacked in `kernels._group_range`)."""
        return (
            self.dx_mdc_mask, self.dx_secondary, self.dx_site, self.dx_principal_mcc, self.excl_offsets,
            self.excl_tables, self.list_kind, self.list_offsets, self.list_codes, self.list_min, self.prog_offsets,
            self.prog, self.adrg_mdc, self.adrg_kind, self.adrg_bounds, self.adrg_drg, self.adrg_flags,
            self.band_offsets, self.band_bounds, self.band_cc_mask, self.band_px_offsets, self.band_px_codes,
            self.band_drg,
            self.list_owner, self.dx_principal_offsets, self.dx_principal_ids, self.dx_secondary_ids,
            self.px_principal_offsets, self.px_principal_ids, self.px_secondary_offsets, self.px_secondary_ids,
            self.mdc_adrg_hi, self.mdc_free_offsets, self.mdc_free_ids,
            self.or_px, self.qy_px, self.pre_ops, self.pre_mdc,
            np.int64(self.mdc_index_a), np.int64(self.pre_mask[0]), np.float64(self.vent_hours_min[0]),
            np.int64(self.vent_adrg[0]),
            np.int64(self.mdcp_age_days_max[0]), np.int64(self.mdcp_infant_age_days_max[0]),
            np.int64(self.mdcz_min_sites[0]),
            np.int64(self.banned_if_male[0]), np.int64(self.banned_if_female[0]),
            np.int64(self.n_adrg), np.int64(self.n_drg),
        )

    @functools.cached_property
    def decode_tables(self) -> dict[str, pa.Array]:
        """Arrow string lookups for decoding kernel ids (built once): ``mdc`` / ``adrg`` / ``drg`` (the codes, then
        a last entry for id -1: "" or ``0000``) and ``reason``: "", the no-principal text, "" (status 2 is written
        with the code), then per MDC the no-ADRG text, then per ADRG and CC level the no-DRG text, in the
        reference's words (`reason_index` gives the position)."""
        from .reference import CC_LABELS, UNGROUPABLE

        reasons = ["", "no principal diagnosis", ""]
        reasons += [f"no ADRG of MDC{m} takes this case" for m in self.mdc_codes]
        reasons += [f"ADRG {a} has no DRG for CC level {CC_LABELS[lv]}"
                    for a in self.adrg_codes[: self.n_adrg] for lv in CC_LEVELS]
        reasons += [f"ADRG {a} has no DRG for this age / length of stay" for a in self.adrg_codes[: self.n_adrg]]
        return {
            "mdc": pa.array([*self.mdc_codes, ""], pa.string()),
            "adrg": pa.array([*self.adrg_codes, ""], pa.string()),
            "drg": pa.array([*self.drg_codes, UNGROUPABLE], pa.string()),
            "reason": pa.array(reasons, pa.string()),
        }

    def reason_index(self, status: np.ndarray, mdc: np.ndarray, adrg: np.ndarray, cc_level: np.ndarray) -> np.ndarray:
        """Positions in ``decode_tables["reason"]`` for kernel outputs (status 2 gives the placeholder "")."""
        idx = np.zeros(len(status), dtype=np.int64)
        idx[status == STATUS_NO_PRINCIPAL] = 1
        idx[status == STATUS_NO_MDC] = 2
        sel = status == STATUS_NO_ADRG
        idx[sel] = 3 + mdc[sel].astype(np.int64)
        sel = status == STATUS_NO_DRG
        idx[sel] = 3 + len(self.mdc_codes) + adrg[sel].astype(np.int64) * 3 + cc_level[sel]
        sel = status == STATUS_NO_BAND
        idx[sel] = 3 + len(self.mdc_codes) + self.n_adrg * 3 + adrg[sel].astype(np.int64)
        return idx


def _csr(groups: list[list[int]], dtype=np.int32) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.array([len(g) for g in groups], dtype=np.int64)
    offsets = np.zeros(len(groups) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.array([x for g in groups for x in g], dtype=dtype)
    return offsets, flat


def _table_sort_key(name: str):
    return (0, int(name), "") if name.isdigit() else (1, 0, name)


def _postfix(node: tuple, list_ids: dict[str, int], out: list[int]) -> int:
    """Append the postfix program of `node`; return the stack depth it needs."""
    kind, value = node
    if kind == "list":
        out.append(list_ids[value])
        return 1
    op = OP_AND if kind == "and" else OP_OR
    depth = _postfix(value[0], list_ids, out)
    for child in value[1:]:
        depth = max(depth, 1 + _postfix(child, list_ids, out))
        out.append(op)
    return depth


def _holds_without_lists(node: tuple, has_or: bool) -> bool:
    """The logic with every code list false and the built-ins as a case with / without an OR procedure has them."""
    kind, value = node
    if kind == "list":
        return has_or if value == "all_or" else (not has_or if value == "mdcz_no_surgery" else False)
    results = [_holds_without_lists(n, has_or) for n in value]
    return all(results) if kind == "and" else any(results)


def _build(scheme: DrgScheme) -> CompiledScheme:
    mdc_order = list(scheme.mdc_order)
    if len(mdc_order) > 63:
        raise ValueError(f"scheme {scheme.name}: {len(mdc_order)} MDCs; the kernel's MDC masks hold 63")
    mdc_index = {m: i for i, m in enumerate(mdc_order)}
    adrgs: list[Adrg] = list(scheme.adrgs.values())
    adrg_index = {a.code: i for i, a in enumerate(adrgs)}

    # --- vocabularies
    dx_set = set(scheme.principal_mdcs) | set(scheme.mcc) | set(scheme.cc) | set(scheme.mdcz_sites)
    for codes in scheme.exclusions.values():
        dx_set |= codes
    dx_set |= scheme.principal_mcc
    px_set = set(scheme.or_procedures) | set(scheme.qy_procedures)
    for adrg in adrgs:
        for band in adrg.bands:
            px_set |= band.procedures
    for adrg in adrgs:
        for name, codes in adrg.lists.items():
            (dx_set if list_kind(name) in _DX_KINDS else px_set).update(codes)
    dx_codes = sorted(c for c in dx_set if c)
    px_codes = sorted(c for c in px_set if c)
    dx_id = {c: i for i, c in enumerate(dx_codes)}
    px_id = {c: i for i, c in enumerate(px_codes)}

    # --- per diagnosis
    dx_mdc_mask = np.zeros(len(dx_codes), dtype=np.int64)
    for code, mdcs in scheme.principal_mdcs.items():
        for m in mdcs:
            if m in mdc_index:
                dx_mdc_mask[dx_id[code]] |= np.int64(1) << np.int64(mdc_index[m])
    excl_names = tuple(sorted(scheme.exclusions, key=_table_sort_key))
    excl_index = {n: i for i, n in enumerate(excl_names)}
    tables_of: list[list[int]] = [[] for _ in dx_codes]
    for t, name in enumerate(excl_names):  # ascending table ids
        for code in scheme.exclusions[name]:
            tables_of[dx_id[code]].append(t)
    excl_offsets, excl_tables = _csr(tables_of)

    def excl_array(table: dict[str, str]) -> np.ndarray:
        out = np.full(len(dx_codes), EXCL_NONE, dtype=np.int32)
        for code, excl in table.items():
            # A table named but absent from cc_exclusions.csv cancels nothing: the code counts always.
            out[dx_id[code]] = excl_index.get(excl, EXCL_ALWAYS) if excl else EXCL_ALWAYS
        return out

    sites = list(scheme.rules.get("mdcz", {}).get("sites", []))
    sites += sorted(set(scheme.mdcz_sites.values()) - set(sites))
    if len(sites) > 63:
        raise ValueError(f"scheme {scheme.name}: {len(sites)} MDCZ sites; the kernel's site mask holds 63")
    site_index = {s: i for i, s in enumerate(sites)}
    dx_site = np.full(len(dx_codes), -1, dtype=np.int32)
    for code, site in scheme.mdcz_sites.items():
        dx_site[dx_id[code]] = site_index[site]

    # --- code lists and logic
    kinds: list[int] = [LIST_ALL_OR, LIST_MDCZ_NO_SURGERY]  # shared built-ins, no codes
    groups: list[list[int]] = [[], []]
    builtin_ids = {"all_or": 0, "mdcz_no_surgery": 1}
    owners: list[int] = [-1, -1]
    minimums: list[int] = [1, 1]
    programs: list[list[int]] = []
    for a, adrg in enumerate(adrgs):
        list_ids = dict(builtin_ids)
        for name in dict.fromkeys(_list_names(adrg.logic)):
            if name in list_ids:
                continue
            kind = list_kind(name)
            ids = dx_id if kind in _DX_KINDS else px_id
            list_ids[name] = len(kinds)
            kinds.append(kind)
            owners.append(a)
            minimums.append(adrg.min_counts.get(name, 1))
            groups.append(sorted(ids[c] for c in adrg.lists.get(name, ()) if c))
        program: list[int] = []
        if _postfix(adrg.logic, list_ids, program) > MAX_STACK:
            raise ValueError(f"ADRG {adrg.code}: logic too deep for the kernel")
        programs.append(program)
    list_offsets, list_codes = _csr(groups)
    prog_offsets, prog = _csr(programs)

    # --- per ADRG
    drg_codes_real = sorted(scheme.drg_names)
    for adrg in adrgs:
        drg_codes_real += [d for d in adrg.drgs.values() if d not in scheme.drg_names]
        drg_codes_real += [d for b in adrg.bands for d in b.drgs.values() if d not in scheme.drg_names]
    drg_codes_real = sorted(set(drg_codes_real))
    drg_index = {d: i for i, d in enumerate(drg_codes_real)}
    n_adrg, n_drg = len(adrgs), len(drg_codes_real)
    adrg_drg = np.full((n_adrg, 3), -1, dtype=np.int16)
    adrg_bounds = np.full((n_adrg, 4), NO_BOUND, dtype=np.int32)
    mdcp_bounds = scheme.rules.get("mdcp", {}).get("adrg", {})
    bands = [b for adrg in adrgs for b in adrg.bands]
    band_offsets = np.zeros(n_adrg + 1, dtype=np.int64)
    band_offsets[1:] = np.cumsum([len(a.bands) for a in adrgs])
    band_bounds = np.array([[NO_BOUND if v is None else v
                             for v in (b.age_years_min, b.age_years_max, b.los_days_min, b.los_days_max)]
                            for b in bands], dtype=np.int32).reshape(len(bands), 4)
    band_cc_mask = np.array([CC_MASK_ALL if b.cc_levels is None else sum(1 << v for v in b.cc_levels)
                             for b in bands], dtype=np.int8)
    band_px_offsets, band_px_codes = _csr([sorted(px_id[c] for c in b.procedures) for b in bands])
    band_drg = np.full((len(bands), 3), -1, dtype=np.int16)

    def drg_id(drgs: dict[str, str], level: int) -> int:
        drg = _choose_drg(drgs, level, scheme)
        return -1 if drg is None else drg_index[drg]

    for i, adrg in enumerate(adrgs):
        for level in CC_LEVELS:
            adrg_drg[i, level] = drg_id(adrg.drgs, level)
        bounds = mdcp_bounds.get(adrg.code) or {}
        for j, key in enumerate(_BOUND_KEYS):
            if key in bounds:
                adrg_bounds[i, j] = int(bounds[key])
    for j, band in enumerate(bands):
        for level in CC_LEVELS:  # a level outside the band's cc_levels is never read: band_cc_mask fails it first
            band_drg[j, level] = drg_id(band.drgs, level)
    adrg_mdc = np.array([mdc_index.get(a.mdc, -1) for a in adrgs], dtype=np.int8)
    adrg_kind = np.array([_KINDS[a.kind] for a in adrgs], dtype=np.int8)

    # Inverted indexes: which lists hold a code, so that the kernel tries only ADRGs one of whose lists holds
    # (the logic is AND / OR of lists: monotone) plus those whose logic holds with no list (built-ins only).
    owner = np.array(owners, dtype=np.int32)
    # kind -> the inverted indexes a list goes in: (principal, secondary) positions of its vocabulary
    positions = {LIST_DX: (True, False), LIST_ANY_DX: (True, True), LIST_OTHER_DX: (False, True),
                 LIST_PX: (True, False), LIST_ANY_PX: (True, True)}
    inverted = {key: [[] for _ in (dx_codes if key[0] == "dx" else px_codes)]
                for key in (("dx", 0), ("dx", 1), ("px", 0), ("px", 1))}
    for list_no in range(len(kinds)):  # ascending list ids, hence ascending owners
        vocabulary = "dx" if kinds[list_no] in _DX_KINDS else "px"
        for position, used in enumerate(positions.get(kinds[list_no], (False, False))):
            if used:
                for code_id in groups[list_no]:
                    inverted[vocabulary, position][code_id].append(list_no)
    dx_principal_offsets, dx_principal_ids = _csr(inverted["dx", 0])
    dx_secondary_offsets, dx_secondary_ids = _csr(inverted["dx", 1])
    px_principal_offsets, px_principal_ids = _csr(inverted["px", 0])
    px_secondary_offsets, px_secondary_ids = _csr(inverted["px", 1])
    dx_secondary = np.stack([excl_array(scheme.mcc), excl_array(scheme.cc), dx_secondary_offsets[:-1],
                             dx_secondary_offsets[1:]], axis=1).astype(np.int32)
    adrg_flags = np.zeros(n_adrg, dtype=np.int8)
    for i, adrg in enumerate(adrgs):
        adrg_flags[i] |= FLAG_FREE_NO_OR if _holds_without_lists(adrg.logic, False) else 0
        adrg_flags[i] |= FLAG_FREE_WITH_OR if _holds_without_lists(adrg.logic, True) else 0
        one = programs[i]
        adrg_flags[i] |= FLAG_SINGLE if len(one) == 1 and owner[one[0]] == i and minimums[one[0]] == 1 else 0
        adrg_flags[i] |= FLAG_PRINCIPAL_MCC if adrg.code in scheme.principal_mcc_adrgs else 0
    free = FLAG_FREE_NO_OR | FLAG_FREE_WITH_OR
    mdc_free_offsets, mdc_free_ids = _csr([[i for i, a in enumerate(adrgs) if a.mdc == m and adrg_flags[i] & free]
                                           for m in mdc_order])
    mdc_adrg_hi = np.zeros(len(mdc_order), dtype=np.int32)
    for k, m in enumerate(mdc_order):
        ids = [i for i, a in enumerate(adrgs) if a.mdc == m]
        if ids:
            mdc_adrg_hi[k] = max(ids) + 1

    or_px = np.zeros(len(px_codes), dtype=np.bool_)
    or_px[[px_id[c] for c in scheme.or_procedures if c]] = True
    qy_px = np.zeros(len(px_codes), dtype=np.bool_)
    qy_px[[px_id[c] for c in scheme.qy_procedures if c]] = True
    dx_principal_mcc = np.zeros(len(dx_codes), dtype=np.bool_)
    dx_principal_mcc[[dx_id[c] for c in scheme.principal_mcc if c]] = True

    # --- pre-MDC and sex
    order = [m for m in scheme.rules.get("pre_mdc", {}).get("order", ["A", "P", "Y", "Z"]) if m in _PRE_OPS]
    pre_ops = np.array([_PRE_OPS[m] for m in order], dtype=np.int8)
    pre_mdc = np.array([mdc_index.get(m, -1) for m in order], dtype=np.int8)

    def mask(letters) -> int:
        return sum(1 << mdc_index[m] for m in set(letters) if m in mdc_index)

    # reference._principal_mdc skips every MDC named in the pre-MDC order
    pre_mask = mask(scheme.rules.get("pre_mdc", {}).get("order", []))
    ventilation = scheme.rules.get("ventilation", {})
    vent_hours = float(ventilation["hours_min"]) if ventilation else float("nan")
    as_procedure = ventilation.get("mode") == "procedure"
    vent_adrg = adrg_index[ventilation["adrg"]] if ventilation and not as_procedure else -1
    vent_px = px_id.get(ventilation["procedures"][0], -1) if as_procedure and ventilation["procedures"] else -1
    sex = scheme.rules.get("sex", {})
    mdcp_age = int(scheme.rules["mdcp"]["age_days_max"]) if "P" in order else -1
    mdcp_infant = int(scheme.rules["mdcp"]["infant_age_days_max"]) if "P" in order else -1
    min_sites = int(scheme.rules["mdcz"]["min_sites"]) if "Z" in order else 0
    qy_suffix = scheme.rules.get("qy", {}).get("suffix", "QY")
    qy_codes = [f"{m}{qy_suffix}" for m in mdc_order]

    return CompiledScheme(
        name=scheme.name, scheme=scheme,
        dx_codes=pa.array(dx_codes, pa.string()), px_codes=pa.array(px_codes, pa.string()),
        mdc_codes=np.array(mdc_order, dtype=object),
        adrg_codes=np.array([a.code for a in adrgs] + qy_codes, dtype=object),
        drg_codes=np.array(drg_codes_real + qy_codes, dtype=object),
        n_adrg=n_adrg, n_drg=n_drg,
        invalid_principal=np.array(sorted(scheme.invalid_principal), dtype=object),
        dx_mdc_mask=dx_mdc_mask, dx_secondary=dx_secondary,
        dx_site=dx_site, dx_principal_mcc=dx_principal_mcc, excl_offsets=excl_offsets, excl_tables=excl_tables,
        excl_names=excl_names,
        list_kind=np.array(kinds, dtype=np.int8), list_offsets=list_offsets, list_codes=list_codes,
        list_min=np.array(minimums, dtype=np.int32), prog_offsets=prog_offsets, prog=prog,
        adrg_mdc=adrg_mdc, adrg_kind=adrg_kind, adrg_bounds=adrg_bounds, adrg_drg=adrg_drg,
        adrg_flags=adrg_flags, band_offsets=band_offsets, band_bounds=band_bounds,
        band_cc_mask=band_cc_mask, band_px_offsets=band_px_offsets, band_px_codes=band_px_codes, band_drg=band_drg,
        list_owner=owner,
        dx_principal_offsets=dx_principal_offsets, dx_principal_ids=dx_principal_ids,
        dx_secondary_ids=dx_secondary_ids,
        px_principal_offsets=px_principal_offsets, px_principal_ids=px_principal_ids,
        px_secondary_offsets=px_secondary_offsets, px_secondary_ids=px_secondary_ids,
        mdc_adrg_hi=mdc_adrg_hi,
        mdc_free_offsets=mdc_free_offsets, mdc_free_ids=mdc_free_ids,
        or_px=or_px, qy_px=qy_px,
        pre_ops=pre_ops, pre_mdc=pre_mdc,
        pre_mask=np.array([pre_mask], dtype=np.int64),
        vent_hours_min=np.array([vent_hours], dtype=np.float64),
        vent_adrg=np.array([vent_adrg], dtype=np.int32),
        vent_px=np.array([vent_px], dtype=np.int32),
        mdcp_age_days_max=np.array([mdcp_age], dtype=np.int32),
        mdcp_infant_age_days_max=np.array([mdcp_infant], dtype=np.int32),
        mdcz_min_sites=np.array([min_sites], dtype=np.int32),
        banned_if_male=np.array([mask(sex.get("female_only", []))], dtype=np.int64),
        banned_if_female=np.array([mask(sex.get("male_only", []))], dtype=np.int64),
    )


_CACHE: dict[str, CompiledScheme] = {}
_LOCK = threading.Lock()


def compile_scheme(scheme: DrgScheme) -> CompiledScheme:
    """The compiled arrays of `scheme`, built once per scheme name (rebuilt if another object has that name)."""
    with _LOCK:
        compiled = _CACHE.get(scheme.name)
        if compiled is None or compiled.scheme is not scheme:
            compiled = _CACHE[scheme.name] = _build(scheme)
        return compiled
