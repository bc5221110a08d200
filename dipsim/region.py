"""The region a settlement runs on, checked before anything is grouped or priced (docs/domain.md §2, §7-12): the
hospitals table, the cases' hospitals and settlement pools, and a budget for every pool.

* **Hospitals table** (`load_hospitals`): columns hospital_id, level and type (coefficient_override and
  reference_points optional). Every row has an id and no id comes twice (a second row used to replace the first
  one's level and coefficient silently); a coefficient_override, where given, is a finite number above 0; a
  reference_points (the hospital's reference for the growth cap, `payment.caps`), a finite number of 0 or more.
  What pricing reads of the cases' hospitals (their level, type) is `pricing.hospital_problems`.
* **Settleable cases** (`settleable`): a case is paid in the pool 统筹区-险种 (`settlement.case_pools`) through its
  hospital. A case without 统筹区 (pool), without a known insurance type (validation leaves an unknown one empty) or
  without hospital_id has no pool or hospital to be paid in: it used to make a phantom pool ("-resident",
  "990100-") with a point value of its own, or stop the run. It is now rejected with its reason, the same way by
  `settle`, `scenarios run` and `nightly`, so that one bad row of a million does not stop a settlement; rows read =
  accepted + rejected still holds. A cases file without one of those columns at all (or without total_cost) cannot
  be settled: an error (`require_settlement_columns`).
* **Budgets** (`budget_problems`): every pool of the cases needs a budget; a budget for a pool the cases do not have
  is only a warning (`unused_budgets`: it may be meant, e.g. a pool with no claims yet).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from dipsim.io.errors import InputError
from dipsim.io.validate import reject_lines, rejected_rows
from dipsim.schema import REJECT_SCHEMA, float_column

# The case columns a settlement cannot do without (canonical name -> the 结算清单 field).
SETTLEMENT_COLUMNS = {"hospital_id": "定点医疗机构编码", "pool": "统筹区", "insurance_type": "险种类型",
                      "total_cost": "医疗总费用"}
HOSPITAL_COLUMNS = ("hospital_id", "level", "type")

# Why a validated case cannot be settled: (field, reason), checked in this order.
NO_HOSPITAL = ("hospital_id", "no hospital: 定点医疗机构编码 (hospital_id) missing")
NO_POOL = ("pool", "no settlement pool: 统筹区 (pool) missing")
NO_INSURANCE = ("insurance_type", "no settlement pool: 险种 (insurance_type) missing or unknown")


def require_settlement_columns(present: Iterable[str], source: str) -> None:
    """InputError when the cases have no column for one of SETTLEMENT_COLUMNS (`present`: canonical names)."""
    missing = [f"{name} ({field})" for name, field in SETTLEMENT_COLUMNS.items() if name not in set(present)]
    if missing:
        raise InputError(f"{source}: no column for {', '.join(missing)}: a case is settled in its pool (统筹区-险种) "
                         "through its hospital, at its cost; map your headers with --mapping FILE (see README)")


def settlement_columns(result) -> list[str]:
    """The canonical columns a `ValidationResult` really read (an absent field is an all-null column)."""
    return [name for name in result.accepted.column_names if name not in set(result.absent_columns)]


@dataclass
class Settleable:
    cases: pa.Table  # the accepted cases that can be settled
    rows: np.ndarray  # their data row numbers
    rejects: pa.Table  # REJECT_SCHEMA: the others, one line per reason

    @property
    def n_rejected(self) -> int:
        return rejected_rows(self.rejects)


def _missing(column) -> np.ndarray:
    """Null, or empty once trimmed."""
    text = pc.utf8_trim_whitespace(pc.cast(column, pa.string()))
    return pc.fill_null(pc.equal(text, ""), True).to_numpy(zero_copy_only=False)


def settleable(cases: pa.Table, rows: np.ndarray, source: np.ndarray | str) -> Settleable:
    """Split validated cases (with their data row numbers and files: a `ValidationResult`'s `accepted_rows` and
    `accepted_sources`) into those that can be settled and the rejects of the others: no hospital_id, no 统筹区, no
    known insurance type (NO_HOSPITAL, NO_POOL, NO_INSURANCE)."""
    rows = np.asarray(rows, dtype=np.int64)
    masks = {reason: _missing(cases[reason[0]]) for reason in (NO_HOSPITAL, NO_POOL, NO_INSURANCE)}
    tables = []
    for (field_name, reason), mask in masks.items():
        idx = np.flatnonzero(mask)
        if len(idx):
            take = pa.array(idx)
            files = source if isinstance(source, str) else np.asarray(source, dtype=object)[idx]
            tables.append(reject_lines(files, rows[idx], cases["case_id"].take(take), field_name,
                                       cases[field_name].take(take), reason))
    if not tables:  # the usual case: every case settleable, the table kept as it is (no copy)
        return Settleable(cases, rows, REJECT_SCHEMA.empty_table())
    keep = ~np.logical_or.reduce(list(masks.values()))
    return Settleable(cases.filter(pa.array(keep)), rows[keep],
                      pa.concat_tables(tables).sort_by([("row", "ascending")]))


@dataclass
class Region:
    """The cases of a settlement or scenario run: validated (`result`, a ValidationResult), split into the
    settleable ones and the rows rejected at settlement (`settled`), and the checked hospitals table."""

    result: object
    settled: Settleable
    hospitals: pa.Table

    @classmethod
    def of(cls, result, hospitals: pa.Table, source: str) -> Region:
        """The region of validated cases (`result`): InputError when they lack a settlement column or none of them
        can be settled; those without a pool or hospital are rejected (`settleable`)."""
        require_settlement_columns(settlement_columns(result), source)
        settled = settleable(result.accepted, result.accepted_rows, result.accepted_sources)
        region = cls(result, settled, hospitals)
        if not settled.cases.num_rows:
            raise InputError(f"{source}: no case can be settled (rows read {result.rows_read:,}, rejected by "
                             f"validation {result.n_rejected:,}; at settlement: "
                             + ("; ".join(f"{n:,} {why}" for why, n in region.reasons().items()) or "none") + ")")
        return region

    @property
    def cases(self) -> pa.Table:
        return self.settled.cases

    def reasons(self) -> dict[str, int]:
        """Why cases were rejected at settlement, and how many for each reason."""
        return {r["values"]: r["counts"] for r in pc.value_counts(self.settled.rejects["reason"]).to_pylist()}

    @functools.cached_property
    def case_set(self):
        """The settleable cases as the payment chain reads them (`payment.chain.CaseSet`): their pools and hospitals
        coded once, for the checks, the budgets and the chain."""
        from dipsim.payment.chain import CaseSet

        return CaseSet.of(self.cases)

    def pools(self) -> list[str]:
        """The settlement pools of the cases (统筹区-险种), sorted; made once."""
        return self.case_set.pools

    def problems(self, policies, budget_pools=(), on=None, day=None) -> list[str]:
        """Before grouping: each pool given a budget on the command line (`budget_pools`) a pool of the cases, and
        every hospital priceable and every pool with a budget under each policy ([(label, Policy)], `region_problems`:
        hospitals under every period's case-level terms or those of `on`, budgets on the settlement day `day`)."""
        pools = self.pools()
        problems = [f"--budget {pool}: not a pool of the cases ({', '.join(pools)})"
                    for pool in budget_pools if pool not in pools]
        return problems + region_problems(self.hospitals, self.case_set.hospitals.ids.tolist(), pools,
                                          policies, on, day)

    @property
    def rejected(self) -> int:
        return self.result.n_rejected + self.settled.n_rejected

    def counts(self) -> str:
        """The line `settle` and `scenarios run` print: nothing lost between reading and settlement."""
        from dipsim.io.validate import counts_line, duplicate_rows

        return counts_line(self.result.rows_read, self.cases.num_rows, self.rejected,
                           {"duplicate case ids": duplicate_rows(self.result.rejects),
                            "at settlement, no pool or hospital": self.settled.n_rejected})

    def rejects(self) -> pa.Table:
        """Validation's rejects and settlement's, by file and row."""
        return pa.concat_tables([self.result.rejects, self.settled.rejects]).sort_by(
            [("file", "ascending"), ("row", "ascending")])

    def manifest(self) -> dict:
        return {**self.result.counts(), "accepted": self.cases.num_rows, "rejected": self.rejected,
                "rejected_at_settlement": self.settled.n_rejected}


def load_hospitals(path) -> pa.Table:
    """The hospitals table (Parquet or CSV), checked (`check_hospitals`)."""
    from dipsim.io.readers import read_table_file

    return check_hospitals(read_table_file(path, "hospitals table"), str(path))


def check_hospitals(table: pa.Table, source: str) -> pa.Table:
    """The hospitals table with hospital_id, level and type as trimmed text (coefficient_override and
    reference_points as float64); InputError listing every row without an id, every id on two rows or more, every
    override that is not a finite number above 0, every reference that is not a finite number of 0 or more. Rows
    are numbered from 1, the first under the header."""
    missing = [name for name in HOSPITAL_COLUMNS if name not in table.column_names]
    if missing:
        raise InputError(f"{source}: the hospitals table has no column {', '.join(missing)} (it needs hospital_id, "
                         f"level, type and optionally coefficient_override, reference_points; found "
                         f"{', '.join(table.column_names)})")
    for name in HOSPITAL_COLUMNS:
        text = pc.utf8_trim_whitespace(pc.cast(table[name], pa.string()))
        table = table.set_column(table.column_names.index(name), name, text)
    problems = []
    ids = pd.Series(table["hospital_id"].to_pylist(), dtype=object)
    row_numbers = np.arange(1, len(ids) + 1)
    empty = ids.isna() | (ids == "")
    if empty.any():
        problems.append(f"no hospital_id on row(s) {_rows(row_numbers[empty.to_numpy()])}")
    repeated = ids[~empty & ids.duplicated(keep=False)]
    for hospital_id, at in repeated.groupby(repeated, sort=True).groups.items():
        problems.append(f"hospital_id {hospital_id} is on rows {_rows(np.asarray(at) + 1)} (each hospital once: "
                        "a later row would replace the earlier one's level and coefficient)")
    # optional numbers: (column, the lowest value allowed, whether it may be equal, why)
    for name, low, equal, why in (
            ("coefficient_override", 0.0, False,
             "a finite number above 0 (leave it empty for the level's coefficient)"),
            ("reference_points", 0.0, True, "a finite number of 0 or more (the hospital's reference points for "
                                            "budget.hospital_cap_tiers; leave it empty for none)")):
        if name not in table.column_names:
            continue
        try:
            values = pc.cast(table[name], pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise InputError(f"{source}: {name} must be a number (or empty) on every row") from None
        table = table.set_column(table.column_names.index(name), name, values)
        numbers = pc.fill_null(values, low + 1.0).to_numpy(zero_copy_only=False)
        bad = ~np.isfinite(numbers) | ((numbers < low) if equal else (numbers <= low))
        if bad.any():
            problems.append(f"{name} on row(s) {_rows(row_numbers[bad])} is not {why}")
    if problems:
        raise InputError(f"{source}: {len(problems)} problem(s) in the hospitals table:\n  " + "\n  ".join(problems))
    return table


def _rows(numbers, limit: int = 10) -> str:
    numbers = [str(n) for n in numbers]
    return ", ".join(numbers[:limit]) + (f" and {len(numbers) - limit} more" if len(numbers) > limit else "")


BUDGET_HINT = "set budget.total in the policy, --budget POOL=YUAN, or --budget-share SHARE (of the pool's cost)"


def budget_problems(pools: Iterable[str], policy, on=None, hint: str = BUDGET_HINT) -> list[str]:
    """Every pool of the cases needs a budget (`budget.total`), even with a fixed point value: the budget is what
    the payouts are compared with (unspent / overrun)."""
    without = sorted(set(pools) - set(policy.get("budget.total", on)))
    return [f"no budget for pool(s) {', '.join(without)} of the cases: {hint}"] if without else []


def unused_budgets(pools: Iterable[str], policy, on=None) -> list[str]:
    """The pools of `budget.total` that the cases do not have (a warning: it may be meant)."""
    return sorted(set(policy.get("budget.total", on)) - set(pools))


def region_problems(hospitals: pa.Table, hospital_ids, pools, policies, on=None, day=None,
                    budget_hint: str = BUDGET_HINT) -> list[str]:
    """Every problem of the cases' hospitals (`pricing.hospital_problems`, under the case-level terms of every
    period of each policy, or of the day `on`) and pools (`budget_problems`, on the settlement day `day`) under
    each policy of `policies`
    ([(label, Policy)]: one policy, or the baseline and every scenario variant), so that a run stops before
    anything is grouped."""
    from dataclasses import replace

    from dipsim.payment.terms import every_case_terms
    from dipsim.pricing import hospital_problems

    hospital_ids, pools = sorted(set(hospital_ids)), sorted(set(pools))
    problems, seen, done = [], set(), set()
    for label, policy in policies:
        found = budget_problems(pools, policy, day, budget_hint)
        for terms in every_case_terms(policy, on):
            key = repr(replace(terms, day=None))  # variants and periods that agree are checked once
            if key not in done:
                done.add(key)
                found += hospital_problems(hospitals, hospital_ids, terms)
        for line in found:
            if line not in seen:  # a problem the variants share is said once, with the first that has it
                seen.add(line)
                problems.append(f"{label}: {line}" if label else line)
    return problems


def partition_region(files) -> tuple[set[str], set[str]]:
    """The settlement pools (统筹区-险种) and hospital ids of Parquet partitions, read from those three columns only
    (cheap: `nightly` checks budgets and hospitals before it groups anything), as validation would read them
    (headers recognised, text trimmed, insurance types mapped; rows without a pool or hospital are rejected at
    settlement and count for neither). InputError naming a partition without one of SETTLEMENT_COLUMNS."""
    from dipsim.io.headers import map_headers
    from dipsim.io.readers import parquet_metadata, read_parquet_raw
    from dipsim.io.validate import insurance_types, text_column

    pools, hospital_ids = set(), set()
    for file in files:
        footer = parquet_metadata(file)
        names = footer.schema.to_arrow_schema().names
        headers = {canonical: header for header, canonical in map_headers(names, source=str(file)).items()}
        require_settlement_columns(headers, str(file))
        wanted = [headers[name] for name in ("pool", "insurance_type", "hospital_id")]
        table, _ = read_parquet_raw(file, columns=wanted, files=[file], footers=[footer])
        distinct = table.group_by(wanted).aggregate([])  # a few hundred combinations, not millions of rows
        pool, hospital = text_column(distinct[wanted[0]]), text_column(distinct[wanted[2]])
        insurance = pa.array(insurance_types(distinct[wanted[1]])[0], pa.string(), from_pandas=True)
        settled = pa.array(~(_missing(hospital) | _missing(pool) | _missing(insurance)))
        pools |= set(pc.binary_join_element_wise(pool.filter(settled), insurance.filter(settled), "-").to_pylist())
        hospital_ids |= set(hospital.filter(settled).to_pylist())
    return pools, hospital_ids


def budgets_from_cost(cases: pa.Table, share: float, budgets: dict | None = None, case_set=None) -> dict[str, float]:
    """`budgets` with every pool of the cases that has none set to `share` x its total cost billed by item (a
    convenience for synthetic regions and what-ifs: a bureau sets its budgets itself). `case_set`: the cases'
    `payment.chain.CaseSet` when already made (its pool codes and costs are read instead)."""
    from dipsim.payment.chain import case_pool_codes

    out = dict(budgets or {})
    if case_set is not None and case_set.pool_codes is not None:
        (codes, names), cost = case_set.pool_codes, case_set.cost
    else:
        (codes, names), cost = case_pool_codes(cases), float_column(cases, "total_cost", 0.0)
    for p in sorted(set(names) - set(out)):
        out[p] = round(float(cost[codes == list(names).index(p)].sum()) * share, 2)
    return out
