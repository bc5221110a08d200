"""One discharge month: draw the stays, write them as a sorted case table and record the ground truth.

The draws happen in a fixed order on the month's own generator, so the same seed gives byte-identical files.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from dipsim.synth.ids import case_ids
from dipsim.synth.money import draw_costs, draw_fund_paid, draw_tcm, draw_tcm_costs
from dipsim.synth.outcomes import DEATH, draw_discharge_modes, draw_ventilation
from dipsim.synth.patterns import Patterns
from dipsim.synth.people import draw_infant_fields
from dipsim.synth.readmissions import Reservoir, refill_reservoir
from dipsim.synth.region import Region
from dipsim.synth.splits import split_stay_costs, split_stay_dates
from dipsim.synth.stays import Cohort, MonthCalendar, draw_cohort, draw_los
from dipsim.synth.table import Claims, case_table, row_order
from dipsim.synth.truth import split_stays, upcoded_cases
from dipsim.synth.upcoding import added_code_ids, draw_upcoding


@dataclass
class MonthResult:
    table: pa.Table
    upcoded: pa.Table
    split_pairs: pa.Table
    readmissions: int
    tcm_treated: int
    deaths: int
    per_hospital: np.ndarray


def generate_month(p: Patterns, region: Region, rng: np.random.Generator, year: int, month: int, n: int,
                   first_case_number: int, case_id_width: int, patient_key: np.uint64, patient_counter: int,
                   reservoir: Reservoir) -> tuple[MonthResult, int]:
    """Generate one discharge month of ``n`` cases; updates the readmission reservoir.

    Returns the month and the next patient counter (fresh patients get pseudonymous ids from a seeded hash of it).
    """
    cal = MonthCalendar.of(year, month)
    c = draw_cohort(rng, p, region, reservoir, cal, n, patient_key, patient_counter)
    claims = draw_claims(rng, p, region, reservoir, cal, c)
    up = draw_upcoding(rng, p, region, c.hospital, c.pattern)
    order, position = row_order(claims)
    added = added_code_ids(up, p, position) if len(up) else None
    table = case_table(p, region, claims, order, case_ids(year, first_case_number, n, case_id_width), added)
    refill_reservoir(reservoir, rng, c.readmit_src, claims, c.pairs)
    result = MonthResult(table=table, upcoded=upcoded_cases(p, table, added),
                         split_pairs=split_stays(table, c.pairs, position), readmissions=c.n_readmissions,
                         tcm_treated=int(claims.tcm.sum()), deaths=int((claims.mode == DEATH).sum()),
                         per_hospital=np.bincount(c.hospital, minlength=len(region.table)))
    return result, patient_counter + c.n_new_patients


def draw_claims(rng: np.random.Generator, p: Patterns, region: Region, reservoir: Reservoir, cal: MonthCalendar,
                c: Cohort) -> Claims:
    """Everything after who and where: infant fields, LOS and dates, outcome, TCM and money."""
    # Each step draws from ``rng`` in turn: reordering the steps changes every file (same seed, other cases).
    age_days, birth_weight = draw_infant_fields(rng, p, c.pattern)
    base_los = draw_los(rng, p, c, reservoir)  # a split pair is costed as the one stay it replaces
    los, discharge = split_stay_dates(rng, c.pairs, base_los, c.discharge, cal.end, cal.n_days)
    tier_code = region.tier_code[c.hospital]
    mode = draw_discharge_modes(rng, p, c.pattern, tier_code, c.pairs.first)
    ventilation = draw_ventilation(rng, p, c.pattern, mode, los)
    tcm = draw_tcm(rng, p, region, c.hospital, c.pattern)
    cost_fen = draw_costs(rng, p, region, c.hospital, c.pattern, base_los, tcm)
    cost_fen, tcm = split_stay_costs(rng, c.pairs, cost_fen, tcm, los)
    tcm_fen = draw_tcm_costs(rng, tcm, cost_fen)
    fund_fen = draw_fund_paid(rng, c.insurance, tier_code, cost_fen)
    return Claims(hospital=c.hospital, pattern=c.pattern, patient=c.patient, sex=c.sex, age=c.age,
                  insurance=c.insurance, admission=(discharge - los).astype(np.int32), discharge=discharge, los=los,
                  age_days=age_days, birth_weight=birth_weight, mode=mode, ventilation=ventilation, tcm=tcm,
                  cost_fen=cost_fen, tcm_fen=tcm_fen, fund_fen=fund_fen)
