"""Numba kernels (no Python objects): CHS-DRG grouping over CSR-encoded cases.

`group_cases` groups every case in parallel (``prange``) with the arrays of a `compiled.CompiledScheme`, following
`dipsim.grouping.reference` step by step; the reference is the specification and `tests/test_drg_kernel.py` checks
the two agree. Set ``NUMBA_DISABLE_JIT=1`` to run the same code as plain Python for debugging.

Speed notes: the per-case loop (`_group_range`) runs over blocks of cases and unpacks the table tuple once per
block; it and its helpers are compiled with ``_nrt=False`` (they allocate nothing), because Numba otherwise updates
the reference count of every array argument on every helper call, which cost more than the grouping itself.
ADRGs are found in one pass over the case's codes through inverted indexes (`_scan`, see `compiled`).

Case inputs: ``dx`` int32 diagnosis ids (principal first) with int64 ``dx_offsets`` (n + 1), ``px`` / ``px_offsets``
likewise for procedures (ids: see `compiled`; -1 unknown, -2 missing), ``sex`` (1 male, 2 female, else unknown),
``age_years``, ``age_days``, ``birth_weight`` (negative = missing) and ``ventilation_hours`` (NaN = missing).
Outputs: ``mdc`` int8 (-1 none), ``adrg`` int16 (-1 none; ``n_adrg + mdc`` = <MDC>QY), ``drg`` int16 (-1 none;
``n_drg + mdc`` = <MDC>QY), ``cc_level`` int8 (0 none, 1 CC, 2 MCC) and ``status`` int8 (0 grouped, 1 no principal
diagnosis, 2 principal in no MDC, 3 no ADRG takes it, 4 no DRG for that CC level, 5 no DRG for the case's band
conditions: every DRG of the ADRG has one, and none holds).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

# Mirrors of the constants in compiled.py (Numba reads module globals as compile-time constants).
_MISSING = -2
_EXCL_NONE = -1
_EXCL_ALWAYS = -2
_LIST_DX, _LIST_PX, _LIST_ANY_DX, _LIST_OTHER_DX, _LIST_ANY_PX, _LIST_ALL_OR, _LIST_MDCZ_NO_SURGERY = range(7)
_OP_AND, _OP_OR = -1, -2
_KIND_MEDICAL = 2
_FLAG_FREE_NO_OR, _FLAG_FREE_WITH_OR, _FLAG_SINGLE, _FLAG_PRINCIPAL_MCC = 1, 2, 4, 8
_PRE_A, _PRE_P, _PRE_Y, _PRE_Z = 0, 1, 2, 3
_NO_BOUND = np.iinfo(np.int32).min
_ST_GROUPED, _ST_NO_PRINCIPAL, _ST_NO_MDC, _ST_NO_ADRG, _ST_NO_DRG, _ST_NO_BAND = 0, 1, 2, 3, 4, 5


@njit(cache=True, inline="always")
def _in_sorted(values, lo, hi, x):
    """x is in the sorted slice values[lo:hi] (binary search)."""
    if x < 0 or lo >= hi or x < values[lo] or x > values[hi - 1]:
        return False
    while lo < hi:
        mid = (lo + hi) >> 1
        v = values[mid]
        if v < x:
            lo = mid + 1
        elif v > x:
            hi = mid
        else:
            return True
    return False


@njit(cache=True, _nrt=False)
def _any_in(codes, start, stop, values, lo, hi):
    for j in range(start, stop):
        if _in_sorted(values, lo, hi, codes[j]):
            return True
    return False


@njit(cache=True, _nrt=False)
def _count_in(codes, start, stop, values, lo, hi, need):
    """At least `need` of codes[start:stop] (by position: a code twice counts twice) are in values[lo:hi]."""
    n = 0
    for j in range(start, stop):
        if _in_sorted(values, lo, hi, codes[j]):
            n += 1
            if n >= need:
                return True
    return False


@njit(cache=True, _nrt=False)
def _list_holds(lst, list_kind, list_offsets, list_codes, list_min, dx, d0, d1, px, p0, p1, has_or):
    """List lst holds: `list_min[lst]` (usually 1) of the case's codes in the positions it reads are in it (a
    principal-only list, dx / px, can hold one)."""
    kind = list_kind[lst]
    lo = list_offsets[lst]
    hi = list_offsets[lst + 1]
    need = list_min[lst]
    if kind == _LIST_DX:
        return need <= 1 and _in_sorted(list_codes, lo, hi, dx[d0])
    if kind == _LIST_PX:
        return need <= 1 and p1 > p0 and _in_sorted(list_codes, lo, hi, px[p0])
    if kind == _LIST_ANY_DX:
        return _any_in(dx, d0, d1, list_codes, lo, hi) if need <= 1 else _count_in(dx, d0, d1, list_codes, lo, hi,
                                                                                    need)
    if kind == _LIST_OTHER_DX:
        return (_any_in(dx, d0 + 1, d1, list_codes, lo, hi) if need <= 1
                else _count_in(dx, d0 + 1, d1, list_codes, lo, hi, need))
    if kind == _LIST_ANY_PX:
        return _any_in(px, p0, p1, list_codes, lo, hi) if need <= 1 else _count_in(px, p0, p1, list_codes, lo, hi,
                                                                                    need)
    if kind == _LIST_ALL_OR:
        return has_or
    return not has_or  # _LIST_MDCZ_NO_SURGERY


@njit(cache=True, _nrt=False)
def _logic_holds(a, prog_offsets, prog, list_kind, list_offsets, list_codes, list_min, dx, d0, d1, px, p0, p1,
                 has_or):
    """Run ADRG a's postfix program; the stack of booleans lives in the bits of an int64 (top = bit 0)."""
    stack = np.int64(0)
    for k in range(prog_offsets[a], prog_offsets[a + 1]):
        op = prog[k]
        if op >= 0:
            bit = 1 if _list_holds(op, list_kind, list_offsets, list_codes, list_min, dx, d0, d1, px, p0, p1,
                                   has_or) else 0
            stack = (stack << 1) | bit
        else:
            top = stack & 1
            below = (stack >> 1) & 1
            r = (top & below) if op == _OP_AND else (top | below)
            stack = ((stack >> 2) << 1) | r
    return (stack & 1) == 1


@njit(cache=True, inline="always")
def _within(value, lo, hi):
    """lo <= value <= hi for the bounds that are set (not _NO_BOUND); a missing (negative) value fails a set bound."""
    if lo != _NO_BOUND and (value < 0 or value < lo):
        return False
    if hi != _NO_BOUND and (value < 0 or value > hi):
        return False
    return True


@njit(cache=True, inline="always")
def _bounds_ok(a, adrg_bounds, weight, age_days):
    """MDCP weight / age bounds (inclusive); a bound with a missing value fails, as in the reference."""
    return (_within(weight, adrg_bounds[a, 0], adrg_bounds[a, 1])
            and _within(age_days, adrg_bounds[a, 2], adrg_bounds[a, 3]))


@njit(cache=True, inline="always")
def _try_lists(q0, q1, list_ids, mdc_a, target, best_a, best_nonmed, best_med, dx, d0, d1, px, p0, p1, has_or,
               weight, age_days, list_kind, list_offsets, list_codes, list_min, prog_offsets, prog, adrg_mdc,
               adrg_kind, adrg_bounds, adrg_flags, list_owner):
    """The lists list_ids[q0:q1] hold one of the case's codes in a position they read: try each list's ADRG if it
    is of MDC `mdc_a` (pre-MDC A) or `target` (surgical and non-OR apart from medical) and before the best found
    so far in its class. Returns the three bests (the ADRG ids are the official order).

    The logic is AND / OR of lists, so an ADRG none of whose lists holds can only hold through the built-ins: the
    caller tries those ADRGs (mdc_free_ids) itself. An ADRG whose logic is the one list found holds at once."""
    for q in range(q0, q1):
        lst = list_ids[q]
        a = list_owner[lst]
        m = adrg_mdc[a]
        if m == mdc_a:
            if a >= best_a:
                continue
        elif m == target:
            if adrg_kind[a] == _KIND_MEDICAL:
                if a >= best_med:
                    continue
            elif a >= best_nonmed:
                continue
        else:
            continue
        if (adrg_flags[a] & _FLAG_SINGLE) == 0 and not _logic_holds(
                a, prog_offsets, prog, list_kind, list_offsets, list_codes, list_min, dx, d0, d1, px, p0, p1,
                has_or):
            continue
        if not _bounds_ok(a, adrg_bounds, weight, age_days):
            continue
        if m == mdc_a:
            best_a = a
        elif adrg_kind[a] == _KIND_MEDICAL:
            best_med = a
        else:
            best_nonmed = a
    return best_a, best_nonmed, best_med


@njit(cache=True, _nrt=False)
def _free(m, mdc_free_offsets, mdc_free_ids, adrg_kind, adrg_flags, adrg_bounds, has_or, weight, age_days,
          best_nonmed, best_med):
    """The first ADRGs of MDC m (all of them: best_nonmed; else by class) whose logic holds on the built-ins
    alone (all_or, mdcz_no_surgery) and whose bounds hold."""
    flag = _FLAG_FREE_WITH_OR if has_or else _FLAG_FREE_NO_OR
    for k in range(mdc_free_offsets[m], mdc_free_offsets[m + 1]):
        a = mdc_free_ids[k]
        if (adrg_flags[a] & flag) == 0 or not _bounds_ok(a, adrg_bounds, weight, age_days):
            continue
        if adrg_kind[a] == _KIND_MEDICAL:
            best_med = min(best_med, a)
        else:
            best_nonmed = min(best_nonmed, a)
    return best_nonmed, best_med


@njit(cache=True, _nrt=False)
def _excluded(principal, table, excl_offsets, excl_tables):
    """The principal diagnosis is in exclusion table `table` (its few tables, scanned)."""
    if principal < 0:
        return False
    for k in range(excl_offsets[principal], excl_offsets[principal + 1]):
        if excl_tables[k] == table:
            return True
    return False


@njit(cache=True, _nrt=False)
def _cc_level(dx, d0, d1, dx_secondary, excl_offsets, excl_tables):
    """MCC (2) > CC (1) > none (0): a secondary MCC / CC counts unless the principal is in its exclusion table;
    a code whose MCC is cancelled may still count as a CC."""
    principal = dx[d0]
    level = 0
    for j in range(d0 + 1, d1):
        code = dx[j]
        if code < 0:
            continue
        t = dx_secondary[code, 0]
        if t != _EXCL_NONE and (t == _EXCL_ALWAYS or not _excluded(principal, t, excl_offsets, excl_tables)):
            return 2
        t = dx_secondary[code, 1]
        if t != _EXCL_NONE and (t == _EXCL_ALWAYS or not _excluded(principal, t, excl_offsets, excl_tables)):
            level = 1
    return level


@njit(cache=True, _nrt=False)
def _n_sites(dx, d0, d1, dx_site):
    mask = np.int64(0)
    for j in range(d0, d1):
        code = dx[j]
        if code >= 0:
            s = dx_site[code]
            if s >= 0:
                mask |= np.int64(1) << s
    n = 0
    while mask != 0:
        mask &= mask - 1
        n += 1
    return n


@njit(cache=True, inline="always")
def _band_holds(band_bounds, band_cc_mask, band_px_offsets, band_px_codes, b, age, los_days, level, px, p0, p1):
    """`tables.DrgBand.holds`: age (`tables.band_age`: -1 missing) in [min, max] (missing fails); the CC level in
    the band's mask; one of the case's procedures in the band's list when it has one; length of stay in [min,
    max], a same-day stay counting as one day (missing fails when the band has a stay bound)."""
    age_min = band_bounds[b, 0]
    if age_min != _NO_BOUND and (age < 0 or age < age_min):
        return False
    age_max = band_bounds[b, 1]
    if age_max != _NO_BOUND and (age < 0 or age > age_max):
        return False
    if ((band_cc_mask[b] >> level) & 1) == 0:
        return False
    lo = band_px_offsets[b]
    hi = band_px_offsets[b + 1]
    if hi > lo and not _any_in(px, p0, p1, band_px_codes, lo, hi):
        return False
    los_min = band_bounds[b, 2]
    los_max = band_bounds[b, 3]
    if los_min == _NO_BOUND and los_max == _NO_BOUND:
        return True
    if los_days < 0:
        return False
    los = max(los_days, 1)
    return (los_min == _NO_BOUND or los >= los_min) and (los_max == _NO_BOUND or los <= los_max)


@njit(cache=True, _nrt=False)
def _group_range(start, stop, dx, dx_offsets, px, px_offsets, sex, age_years, age_days, birth_weight,
                 ventilation_hours, los_days, tables, out_mdc, out_adrg, out_drg, out_cc, out_status):
    """Cases start..stop-1. The tables are unpacked once per range: passing ~40 arrays per case would cost a
    reference-count update per array and case."""
    (dx_mdc_mask, dx_secondary, dx_site, dx_principal_mcc, excl_offsets,
     excl_tables, list_kind, list_offsets, list_codes, list_min, prog_offsets,
     prog, adrg_mdc, adrg_kind, adrg_bounds, adrg_drg, adrg_flags,
     band_offsets, band_bounds, band_cc_mask, band_px_offsets, band_px_codes,
     band_drg,
     list_owner, dx_principal_offsets, dx_principal_ids, dx_secondary_ids,
     px_principal_offsets, px_principal_ids, px_secondary_offsets, px_secondary_ids,
     mdc_adrg_hi, mdc_free_offsets, mdc_free_ids,
     or_px, qy_px, pre_ops, pre_mdc,
     mdc_of_a, pre_mask, vent_hours_min, vent_adrg, mdcp_age_days_max, mdcp_infant_age_days_max, mdcz_min_sites,
     banned_if_male, banned_if_female, n_adrg, n_drg) = tables
    for i in range(start, stop):
        out_mdc[i] = -1
        out_adrg[i] = -1
        out_drg[i] = -1
        out_cc[i] = 0
        d0 = dx_offsets[i]
        d1 = dx_offsets[i + 1]
        if d1 <= d0 or dx[d0] == _MISSING:
            out_status[i] = _ST_NO_PRINCIPAL
            continue
        p0 = px_offsets[i]
        p1 = px_offsets[i + 1]
        principal = dx[d0]
        pmask = dx_mdc_mask[principal] if principal >= 0 else np.int64(0)
        # The case "has an operation" (all_or, mdcz_no_surgery) when its principal procedure is one.
        has_or = p1 > p0 and px[p0] >= 0 and or_px[px[p0]]
        weight = birth_weight[i]
        days = age_days[i]

        # Pre-MDC (先期分组) in the scheme's order. P, Y and Z depend on the principal, ages and trauma sites
        # only; A on the ADRG lists: first find the MDC the case gets if A does not take it (target), and
        # whether A is tried before that.
        target = -1
        need_a = False
        for k in range(pre_ops.shape[0]):
            op = pre_ops[k]
            m = pre_mdc[k]
            if m < 0:
                continue
            if op == _PRE_A:
                need_a = True
            elif (pmask >> m) & 1:
                if op == _PRE_P:
                    if days >= 0 and (days <= mdcp_age_days_max or (days <= mdcp_infant_age_days_max
                                                                     and age_years[i] <= 0)):
                        target = m
                        break
                elif op == _PRE_Y:
                    target = m
                    break
                elif op == _PRE_Z:
                    if _n_sites(dx, d0, d1, dx_site) >= mdcz_min_sites:
                        target = m
                        break
        # Principal diagnosis -> MDC, first in scheme order, skipping the pre-MDCs and the other sex's MDC.
        if target < 0:
            banned = pre_mask
            if sex[i] == 1:
                banned |= banned_if_male
            elif sex[i] == 2:
                banned |= banned_if_female
            avail = pmask & ~banned
            if avail != 0:
                target = 0
                while ((avail >> target) & 1) == 0:
                    target += 1

        # ADRG candidates of MDCA (when tried) and of the target MDC, in one pass over the codes.
        # An ADRG id >= mdc_adrg_hi of its MDC means "none"; -2 matches no MDC.
        mdc_a = mdc_of_a if need_a else -2
        mdc_t = target if target >= 0 else -2
        none_a = mdc_adrg_hi[mdc_of_a] if need_a else 0
        none_t = mdc_adrg_hi[target] if target >= 0 else 0
        best_a, best_nonmed, best_med = none_a, none_t, none_t
        if need_a:
            free_nonmed, free_med = _free(mdc_of_a, mdc_free_offsets, mdc_free_ids, adrg_kind, adrg_flags,
                                          adrg_bounds, has_or, weight, days, none_a, none_a)
            best_a = min(free_nonmed, free_med)  # MDCA tries its ADRGs in official order, whatever their kind
        if target >= 0:
            best_nonmed, best_med = _free(target, mdc_free_offsets, mdc_free_ids, adrg_kind, adrg_flags,
                                          adrg_bounds, has_or, weight, days, best_nonmed, best_med)
        # Every list holding one of the case's codes in a position it reads (principal / secondary).
        for is_dx in (True, False):
            c0, c1 = (d0, d1) if is_dx else (p0, p1)
            for j in range(c0, c1):
                code = dx[j] if is_dx else px[j]
                if code < 0:
                    continue
                if j == c0 and is_dx:
                    q0, q1, ids = dx_principal_offsets[code], dx_principal_offsets[code + 1], dx_principal_ids
                elif is_dx:
                    q0, q1, ids = dx_secondary[code, 2], dx_secondary[code, 3], dx_secondary_ids
                elif j == c0:
                    q0, q1, ids = px_principal_offsets[code], px_principal_offsets[code + 1], px_principal_ids
                else:
                    q0, q1, ids = px_secondary_offsets[code], px_secondary_offsets[code + 1], px_secondary_ids
                if q1 > q0:
                    best_a, best_nonmed, best_med = _try_lists(
                        q0, q1, ids, mdc_a, mdc_t, best_a, best_nonmed, best_med, dx, d0, d1, px, p0, p1, has_or,
                        weight, days, list_kind, list_offsets, list_codes, list_min, prog_offsets, prog, adrg_mdc,
                        adrg_kind, adrg_bounds, adrg_flags, list_owner)

        adrg = -1
        if need_a and best_a < none_a:
            mdc = mdc_of_a
            adrg = best_a
        elif need_a and vent_adrg >= 0 and ventilation_hours[i] >= vent_hours_min:
            mdc = mdc_of_a
            adrg = vent_adrg
        elif target < 0:
            out_status[i] = _ST_NO_MDC
            continue
        else:
            mdc = target
        out_mdc[i] = mdc

        # ADRG: surgical and non-OR, then QY (an operation as principal procedure), then medical.
        if adrg < 0:
            if best_nonmed < none_t:
                adrg = best_nonmed
            elif p1 > p0 and px[p0] >= 0 and qy_px[px[p0]]:
                out_adrg[i] = n_adrg + mdc
                out_drg[i] = n_drg + mdc
                out_cc[i] = _cc_level(dx, d0, d1, dx_secondary, excl_offsets, excl_tables)
                out_status[i] = _ST_GROUPED
                continue
            elif best_med < none_t:
                adrg = best_med
        if adrg < 0:
            out_status[i] = _ST_NO_ADRG
            continue
        out_adrg[i] = adrg
        level = _cc_level(dx, d0, d1, dx_secondary, excl_offsets, excl_tables)
        if (adrg_flags[adrg] & _FLAG_PRINCIPAL_MCC) != 0 and principal >= 0 and dx_principal_mcc[principal]:
            level = 2  # [principal_mcc]: the principal diagnosis (高危妊娠) is an MCC in this ADRG
        out_cc[i] = level
        drg = adrg_drg[adrg, level]
        b0 = band_offsets[adrg]
        b1 = band_offsets[adrg + 1]
        banded = False
        if b1 > b0:
            # the age a band reads (tables.band_age): years when recorded, else days // 365, else -1
            age = age_years[i] if age_years[i] >= 0 else (days // 365 if days >= 0 else -1)
            for b in range(b0, b1):
                if _band_holds(band_bounds, band_cc_mask, band_px_offsets, band_px_codes, b, age, los_days[i],
                               level, px, p0, p1):
                    drg = band_drg[b, level]
                    banded = True
                    break
        if b1 > b0 and not banded and drg < 0:  # every DRG of the ADRG has a band, and none holds
            out_status[i] = _ST_NO_BAND
            continue
        if drg < 0:
            out_status[i] = _ST_NO_DRG
            continue
        out_drg[i] = drg
        out_status[i] = _ST_GROUPED


BLOCK = 4096  # cases per parallel task


@njit(cache=True, parallel=True)
def group_cases(dx, dx_offsets, px, px_offsets, sex, age_years, age_days, birth_weight, ventilation_hours,
                los_days, tables, out_mdc, out_adrg, out_drg, out_cc, out_status):
    """Group cases 0..n-1 (n = len(dx_offsets) - 1) into the out_* arrays; `tables` is
    `CompiledScheme.kernel_tables`. Parallel over blocks of BLOCK cases."""
    n = dx_offsets.shape[0] - 1
    n_blocks = (n + BLOCK - 1) // BLOCK
    for b in prange(n_blocks):
        _group_range(b * BLOCK, min(n, (b + 1) * BLOCK), dx, dx_offsets, px, px_offsets, sex, age_years, age_days,
                     birth_weight, ventilation_hours, los_days, tables, out_mdc, out_adrg, out_drg, out_cc,
                     out_status)


@njit(cache=True, parallel=True)
def cc_levels(dx, dx_offsets, dx_secondary, excl_offsets, excl_tables, out):
    """The CC level (0 none, 1 CC, 2 MCC) of every case from its secondary diagnoses alone, whatever its group
    (the DIP auxiliary catalogue's severity); 0 without a principal diagnosis."""
    for i in prange(dx_offsets.shape[0] - 1):
        d0 = dx_offsets[i]
        d1 = dx_offsets[i + 1]
        out[i] = 0 if d1 <= d0 or dx[d0] < 0 else _cc_level(dx, d0, d1, dx_secondary, excl_offsets, excl_tables)
