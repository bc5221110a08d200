"""A row-at-a-time reference of `dipsim.io.validate.validate_cases`: the specification of validation, in plain Python.

The product validates column by column (Arrow, once per distinct value); this module decides the same thing for one
row at a time, from the row's cells as read (`RawCases.table.to_pylist()`), with no Arrow compute, no pandas and no
numpy. `tests/test_validation_reference.py` runs both on every input it can find and requires the same accepted
rows (values and types), the same rejects and the same warnings, line for line and in the same order.

What a row gets, in this order (the order of its lines in the rejects and in the warnings tables):

1. a text cell longer than a spreadsheet cell (32,767 characters), in column order: rejected;
2. the case id: missing, or seen on an earlier row (the first is kept: `duplicate case id (first at row N)`);
   a file without a case id column gets ids `FILE#ROW` and one warning on its first row; the insurance type;
3. the diagnoses, then the procedures: split, normalised, crosswalked on request, then checked for shape and
   against the 医保版 2.0 dictionaries;
4. sex, age in years, age in days, birth weight;
5. admission and discharge dates, discharge before admission, length of stay (derived from the dates when missing),
   discharge mode, ventilation hours;
6. the amounts (total cost, fund paid, patient paid, TCM cost), their sums, the TCM flag.

A row with a reject line is rejected; warnings are recorded for every row that has them, rejected or not. The lines
of all rows are in row order, a row's own lines in the order above; the reader's rejects (`RawCases.rejects`: rows it
could not split into fields or decode, which are not in the table) are merged in by their row numbers.

Only data is taken from dipsim: the case schema (field names and types), the discharge-mode labels, the code
dictionaries and crosswalk tables, and the two code-shape patterns (each checked against every dictionary code by
tests/test_codes.py). Every rule is written out again here.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import re
import unicodedata
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from dipsim import codes
from dipsim.io import InputError
from dipsim.io.validate import ValidationOptions
from dipsim.schema import CASE_FIELDS, DISCHARGE_MODES

# ---------------------------------------------------------------- the words and limits of the rules

MISSING_TOKENS = {"", "null", "none", "nan", "na", "n/a", "#n/a", "-", "--", "\\n"}  # compared in lower case
SEX_WORDS = {"男": 1, "m": 1, "male": 1, "女": 2, "f": 2, "female": 2, "未知": 0, "未说明": 9}
SEX_CODES = {0, 1, 2, 9}
DISCHARGE_WORDS = {label: code for code, label in DISCHARGE_MODES.items()} | {"转院": 2, "离院": 1}
DISCHARGE_CODES = set(DISCHARGE_MODES)  # 1, 2, 3, 4, 5, 9
INSURANCE_WORDS = {
    "employee": "employee", "职工": "employee", "城镇职工": "employee", "职工基本医疗保险": "employee",
    "城镇职工基本医疗保险": "employee", "310": "employee",
    "resident": "resident", "居民": "resident", "城乡居民": "resident", "城乡居民基本医疗保险": "resident",
    "城镇居民": "resident", "新农合": "resident", "390": "resident",
}
TRUE_WORDS = {"1": 1, "true": 1, "t": 1, "y": 1, "yes": 1, "是": 1,
              "0": 0, "false": 0, "f": 0, "n": 0, "no": 0, "否": 0}
MAX_FIELD_CHARS = 32_767
SHOWN_CHARS = 200  # a reported value is cut to this many characters
DAYS_PER_YEAR = 365.25
EXCEL_EPOCH = dt.date(1899, 12, 30)
TEXT_FIELDS = ("patient_id", "hospital_id", "pool", "tcm_diagnosis", "department", "insurer_drg")
AMOUNTS = ("total_cost", "fund_paid", "patient_paid", "tcm_cost")
MISSING_TOTAL_COST = "missing total cost (医疗总费用): the case cannot be priced"
# Whitespace that separates codes in a cell and is removed inside a code: space, tab, line ends, form feed. NFKC
# comes first and turns the other spaces (ideographic U+3000, no-break U+00A0 ...) into a plain space.
CODE_SPACE = "[ \t\n\r\f]"
CODE_SEPARATORS = re.compile(f"(?:[,;|、]|{CODE_SPACE})+")


# ---------------------------------------------------------------- one cell: text, number, date, word


def is_number(value) -> bool:
    """A typed number in the input (a numeric or boolean Parquet column), not text that reads as one."""
    return isinstance(value, (bool, int, float, Decimal))


def number_text(value) -> str:
    """How a typed value reads as text (Arrow's cast to string): 12, 1.5, true, 2025-01-03."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return repr(value)
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return str(value)


def text_of(value) -> str:
    return value if isinstance(value, str) else number_text(value)


def text(value) -> str | None:
    """A cell as text: full-width letters and digits made ASCII (NFKC), trimmed; None when missing (empty, or one
    of MISSING_TOKENS in any case)."""
    if value is None:
        return None
    s = unicodedata.normalize("NFKC", text_of(value)).strip()
    return None if s.lower() in MISSING_TOKENS else s


_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]?(?:inf|infinity|nan)",
                     re.IGNORECASE)
_UNIT = re.compile(r"(元|天|小时|克|g|岁)\Z")


def parse_number(s: str) -> float:
    """A decimal number written as text, with thousands separators and one trailing unit allowed (1,234.50元,
    3天); NaN when it is none."""
    s = _UNIT.sub("", s.replace(",", ""), count=1)
    return float(s) if _NUMBER.fullmatch(s) else math.nan


@dataclass
class Parsed:
    """A cell read as a number, a date or a word: its value (None when missing or bad), whether it was missing,
    whether it was bad, and what a reject line shows."""

    value: object
    missing: bool
    bad: bool
    shown: object


def number(value) -> Parsed:
    if value is not None and is_number(value):
        v = float(value)
        return Parsed(None if math.isnan(v) else v, math.isnan(v), False, v)
    s = text(value)
    if s is None:
        return Parsed(None, True, False, None)
    v = parse_number(s)
    return Parsed(None, False, True, s) if math.isnan(v) else Parsed(v, False, False, s)


_TIME_OF_DAY = re.compile(r"[ T][0-9]{1,2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?\Z")
_YMD = re.compile(r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})")
_COMPACT = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})")
_SERIAL = re.compile(r"[0-9]{5}(\.[0-9]+)?")


def parse_date(s: str) -> dt.date | None:
    """2025-01-03, 2025/1/3, 2025.1.3, 20250103, 2025年1月3日 (a time of day after a space or T is dropped), or an
    Excel serial day number of five digits (45000, 45000.5); None for anything else, an impossible date, or a year
    outside 1900-2100."""
    s = _TIME_OF_DAY.sub("", s)
    if _SERIAL.fullmatch(s):  # days since 1899-12-30, a fraction being the time of day
        day = EXCEL_EPOCH + dt.timedelta(days=int(s.split(".")[0]))
    else:
        match = _YMD.fullmatch(s := re.sub("[年月/.]", "-", s).replace("日", "")) or _COMPACT.fullmatch(s)
        try:
            day = dt.date(*(int(g) for g in match.groups())) if match else None
        except ValueError:  # 2025-02-30
            day = None
    return day if day is not None and 1900 <= day.year <= 2100 else None


def date(value) -> Parsed:
    """A date cell: a typed date or timestamp (its day), or text (`parse_date`); a year outside 1900-2100 is bad
    either way."""
    if isinstance(value, dt.datetime):
        value = value.date()
    if isinstance(value, dt.date):
        plausible = 1900 <= value.year <= 2100
        return Parsed(value if plausible else None, False, not plausible, value)
    s = text(value)
    if s is None:
        return Parsed(None, True, False, None)
    day = parse_date(s)
    return Parsed(day, False, day is None, s)


def word(value, words: dict, allowed: set | None = None) -> Parsed:
    """A coded field: text looked up in `words` (lower case; `1.0` reads as `1`), or a number in `allowed`. A typed
    number reads as its text (310 as "310") and is shown as a number."""
    if value is not None and is_number(value):
        v = float(value)
        if math.isnan(v):
            return Parsed(None, True, False, v)
        p = word(number_text(value), words, allowed)
        return Parsed(p.value, False, p.bad, v)
    s = text(value)
    if s is None:
        return Parsed(None, True, False, None)
    key = re.sub(r"\.0+\Z", "", s.lower())
    if key in words:
        return Parsed(words[key], False, False, s)
    if allowed is not None and _NUMBER.fullmatch(key) and float(key) in allowed:
        return Parsed(float(key), False, False, s)
    return Parsed(None, False, True, s)


def shown(value) -> str:
    """A value as a reject or warning line shows it: text as it is, numbers as Python writes a float, dates
    ISO; nothing for a missing value; cut to SHOWN_CHARS characters."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (dt.date, dt.datetime)):
        out = value.isoformat()
    elif isinstance(value, str):
        out = value
    else:
        out = str(value)
    return out[:SHOWN_CHARS]


# ---------------------------------------------------------------- codes


def split_codes(cell) -> list[str]:
    """A code cell as a list, principal first: NFKC, trimmed, white space around the + or † of a dagger-asterisk
    pair removed, split at runs of , ; | 、 and whitespace, empty items dropped, except an empty first item when
    other codes follow (",I10.x00": the principal was left out)."""
    if cell is None:
        return []
    text = re.sub(f"{CODE_SPACE}*([+†]){CODE_SPACE}*", r"\1", unicodedata.normalize("NFKC", text_of(cell)).strip())
    parts = CODE_SEPARATORS.split(text)
    items = [p for p in parts if p]
    return ([""] if parts[0] == "" and items else []) + items


_SHAPES = {"icd10": re.compile(codes.ICD10_SHAPE.strip("^$")), "icd9": re.compile(codes.ICD9_SHAPE.strip("^$"))}


def has_code_shape(code: str, system: str) -> bool:
    return _SHAPES[system].fullmatch(code) is not None


def _upper(s: str) -> str:
    """Upper case one character at a time (a character whose upper case is longer stays)."""
    return "".join(c.upper() if len(c.upper()) == 1 else c for c in s)


def normalise_code(code: str, system: str) -> str:
    """A code towards the 医保版 2.0 spelling (README, Codes): a code of valid shape is left as it is; any other is
    made half-width (NFKC), stripped of whitespace, † made +, upper-cased with the x of x-suffixes and .x lower
    case (an X that starts a component stays upper case), given its missing dot and its short decimals padded.
    Garbage stays garbage."""
    if has_code_shape(code, system):
        return code
    c = re.sub(f"{CODE_SPACE}+", "", unicodedata.normalize("NFKC", code)).replace("†", "+")
    c = _upper(c).replace("X", "x")
    c = re.sub(r"\Ax", "X", c).replace("+x", "+X")
    if system == "icd10":
        # K35800 -> K35.800 (the first component: the dot after its three characters)
        c = re.sub(r"\A([A-Z][0-9]{2})([0-9x][0-9]{0,2}(?:x[0-9]{3})?)(\+.*)?\Z", r"\1.\2\3", c)
        # E11.401+G632* -> E11.401+G63.2* (the asterisk component)
        c = re.sub(r"\+([A-Z][0-9]{2})([0-9x][0-9]{0,2})\*\Z", r"+\1.\2*", c)
        # K35.8 -> K35.800, K35.80 -> K35.800, I10.x -> I10.x00 (never before an x-suffix)
        c = re.sub(r"\A([A-Z][0-9]{2}\.[0-9x])(\+.*)?\Z", r"\g<1>00\2", c)
        c = re.sub(r"\A([A-Z][0-9]{2}\.[0-9x][0-9])(\+.*)?\Z", r"\g<1>0\2", c)
    else:
        # 470900 -> 47.0900, 1791100 -> 17.91100 (the dot after two digits)
        c = re.sub(r"\A([0-9]{2})((?:[0-9][0-9x][0-9]{0,2}|[0-9]{5}|[0-9]{3}[A-Z][0-9])(?:x[0-9]{3})?)\Z",
                   r"\1.\2", c)
        # 47.09 -> 47.0900, 47.090 -> 47.0900 (never before an x-suffix)
        c = re.sub(r"\A([0-9]{2}\.[0-9][0-9x])\Z", r"\g<1>00", c)
        c = re.sub(r"\A([0-9]{2}\.[0-9][0-9x][0-9])\Z", r"\g<1>0", c)
    return c


@functools.cache
def crosswalk(name: str) -> dict[str, str]:
    table = codes.load_crosswalk(name).table
    return dict(zip(table["source_code"], table["target_code"], strict=True))


@functools.cache
def dictionary(system: str) -> dict[str, bool]:
    """Each code of a 医保版 2.0 dictionary -> may it be a principal diagnosis (always True for procedures)."""
    if system == "icd10":
        d = codes.load_icd10()
        return dict(zip(d.codes.to_pylist(), d.table["allowed_as_principal"].tolist(), strict=True))
    return dict.fromkeys(codes.load_icd9().codes.to_pylist(), True)


def code_list(cell, system: str, walk: str | None) -> list[str]:
    """The codes of a cell (text to split, or a list as a Parquet list column holds it), normalised and, on
    request, crosswalked; a missing item of a list is an empty code."""
    items = ["" if c is None else text_of(c) for c in cell] if isinstance(cell, list) else split_codes(cell)
    out = [normalise_code(c, system) for c in items]
    return [crosswalk(walk).get(c, c) for c in out] if walk else out


# ---------------------------------------------------------------- one row


@dataclass
class Line:
    field: str
    value: str
    reason: str


@dataclass
class Row:
    """The lines one row gets, in order, and whether it is rejected."""

    rejects: list[Line] = field(default_factory=list)
    warnings: list[Line] = field(default_factory=list)

    @property
    def rejected(self) -> bool:
        return bool(self.rejects)

    def reject(self, field_name: str, value, reason: str) -> None:
        self.rejects.append(Line(field_name, shown(value), reason))

    def warn(self, field_name: str, value, reason: str) -> None:
        self.warnings.append(Line(field_name, shown(value), reason))


def g(x: float) -> str:
    """A number in a message, as C's %g writes it (7, 3.5)."""
    return f"{x:g}"


def check_codes(row: Row, name: str, cell, present: bool, opts: ValidationOptions) -> list[str]:
    system, walk = ("icd10", opts.diagnosis_crosswalk) if name == "diagnoses" else ("icd9", opts.procedure_crosswalk)
    if not present:
        return []
    items = code_list(cell, system, walk)
    label = "ICD-10" if system == "icd10" else "ICD-9-CM-3"
    principal = items[0] if items else ""
    others = [c for c in items[1:] if c]
    if name == "diagnoses":
        if principal and not has_code_shape(principal, system):
            row.reject(name, principal, f"principal diagnosis is not an {label} code")
        if not principal:
            reason = "missing principal diagnosis (主要诊断)"
            if others:
                reason += " although other diagnoses are given (none is taken as principal)"
            if opts.missing_principal == "reject":
                row.reject(name, ",".join(items), reason)
            else:
                row.warn(name, ",".join(items), reason + ": will be ungroupable")
    elif items and not principal:
        row.warn(name, ",".join(items), "missing principal procedure (主要手术操作) although other procedures are "
                                        "given: no procedure is taken as principal")
    checked = items[1:] if name == "diagnoses" else items  # a malformed principal diagnosis is a reject already
    for code in checked:
        if code and not has_code_shape(code, system):
            row.warn(name, code, f"not an {label} code: ignored by grouping")
    if opts.check_dictionary:
        known = dictionary(system)
        for code in items:
            if has_code_shape(code, system) and code not in known:
                row.warn(name, code, f"not in {label} 医保版 2.0")
        if name == "diagnoses" and principal in known and not known[principal]:
            row.warn(name, principal, "not allowed as principal diagnosis (灰码) in 医保版 2.0")
    return items


def whole_number(row: Row, cells: dict, name: str, high: float, label: str) -> float | None:
    """A count (days, years, grams): a number, whole, from 0 to `high`."""
    if name not in cells:
        return None
    p = number(cells[name])
    if p.bad:
        row.reject(name, p.shown, f"{label} is not a number")
    v = p.value
    if v is not None:
        if math.isfinite(v) and v != round(v):
            row.reject(name, p.shown, f"{label} is not a whole number")
        if v < 0:
            row.reject(name, p.shown, f"negative {label}")
        elif v > high:
            row.reject(name, p.shown, f"{label} above {g(high)}")
    return v


def amount(row: Row, cells: dict, name: str, label: str, maximum: float = math.inf,
           missing_reason: str | None = None) -> float | None:
    """An amount or a duration: a number, not negative, not above `maximum`; a missing one rejected with
    `missing_reason` when given, showing the cell as it was read."""
    if name not in cells:
        return None
    p = number(cells[name])
    if p.bad:
        row.reject(name, p.shown, f"{label} is not a number")
    if missing_reason and p.missing:
        row.reject(name, cells[name], missing_reason)
    v = p.value
    if v is not None and v < 0:
        row.reject(name, p.shown, f"negative {label}")
    if v is not None and v > maximum:
        row.reject(name, p.shown, f"implausible {label} (above {maximum:,.0f})")
    return v


def check_row(cells: dict, case_id: str | None, duplicate_of: int | None, opts: ValidationOptions,
              row: Row) -> dict:
    """Every check of one row, in order; returns the row's accepted values by field name."""
    out: dict = {"case_id": case_id}
    # -- text fields longer than a spreadsheet cell
    # (done by the caller, first: it covers every column, the unmapped ones too)
    # -- identity
    if "case_id" in cells and case_id is None:
        row.reject("case_id", None, "missing case id")
    if duplicate_of is not None:
        row.reject("case_id", case_id, f"duplicate case id (first at row {duplicate_of})")
    for name in TEXT_FIELDS:
        out[name] = text(cells.get(name))
    out["insurance_type"] = None
    if "insurance_type" in cells:
        p = word(cells["insurance_type"], INSURANCE_WORDS)
        if p.bad:
            row.warn("insurance_type", p.shown, "unknown insurance type (险种): left empty; the case is rejected at "
                                                "settlement (no settlement pool)")
        out["insurance_type"] = p.value
    # -- codes
    out["diagnoses"] = check_codes(row, "diagnoses", cells.get("diagnoses"), "diagnoses" in cells, opts)
    out["procedures"] = check_codes(row, "procedures", cells.get("procedures"), "procedures" in cells, opts)
    # -- person
    sex = 0
    if "sex" in cells:
        p = word(cells["sex"], SEX_WORDS, SEX_CODES)
        if p.bad:
            row.reject("sex", p.shown, "sex must be 1 (男), 2 (女), 0 or 9 (unknown)")
        if p.missing:
            row.warn("sex", None, "missing sex: treated as unknown (0)")
        sex = 0 if p.value is None else p.value
    age = whole_number(row, cells, "age_years", opts.max_age_years, "age")
    age_days = whole_number(row, cells, "age_days", opts.max_age_years * 366, "age in days")
    derived = age is None and age_days is not None
    if derived:
        age = math.floor(age_days / DAYS_PER_YEAR)
    if ("age_years" in cells or "age_days" in cells) and age is None:
        row.warn("age_years", None, "missing age")
    if age_days is not None and not derived and abs(age_days / DAYS_PER_YEAR - age) > 1.5:
        row.warn("age_days", age_days, "age in days disagrees with age in years")
    weight = whole_number(row, cells, "birth_weight_g", opts.max_birth_weight_g, "birth weight")
    out.update(sex=sex, age_years=age, age_days=age_days, birth_weight_g=None if weight == 0 else weight)
    # -- stay
    dates = {}
    for name in ("admission_date", "discharge_date"):
        p = date(cells.get(name))
        if p.bad:
            row.reject(name, p.shown, "bad date")
        dates[name] = p.value
    admission, discharge = dates["admission_date"], dates["discharge_date"]
    span = (discharge - admission).days if admission and discharge else None
    if span is not None and span < 0:
        row.reject("discharge_date", discharge, "discharge before admission")
    los = whole_number(row, cells, "los_days", opts.max_los_days, "length of stay")
    if los is None and span is not None and span >= 0:
        los = max(span, 1)  # a same-day stay counts one day
    if los is None and not row.rejected:
        row.reject("los_days", None, "missing length of stay (住院天数) and dates")
    if span is not None and span >= 0 and los is not None and abs(los - span) > opts.los_date_tolerance_days:
        row.reject("los_days", f"{g(los)} vs dates {g(span)} days", "LOS inconsistent with the dates")
    mode = None
    if "discharge_mode" in cells:
        p = word(cells["discharge_mode"], DISCHARGE_WORDS, DISCHARGE_CODES)
        if p.bad:
            row.reject("discharge_mode", p.shown, "discharge mode (离院方式) must be 1, 2, 3, 4, 5 or 9")
        if p.missing:
            row.warn("discharge_mode", None, "missing discharge mode (离院方式)")
        mode = p.value
    ventilation = amount(row, cells, "ventilation_hours", "ventilation hours")
    if ventilation is not None and los is not None and ventilation / 24 > los + 1:
        row.reject("ventilation_hours", ventilation, "ventilation hours longer than the stay")
    out.update(admission_date=admission, discharge_date=discharge, los_days=los, discharge_mode=mode,
               ventilation_hours=ventilation)
    # -- money
    money = {name: amount(row, cells, name, "amount (yuan)", opts.max_cost_yuan,
                          MISSING_TOTAL_COST if name == "total_cost" else None) for name in AMOUNTS}
    total, fund, patient = money["total_cost"], money["fund_paid"], money["patient_paid"]
    if (fund is not None or patient is not None) and total is not None and total >= 0:
        split = finite(fund) + finite(patient)
        if split > total + 0.005:
            row.reject("fund_paid", split, "fund and patient amounts exceed the total cost")
    if money["tcm_cost"] is not None and total is not None and money["tcm_cost"] > total + 0.005:
        row.reject("tcm_cost", money["tcm_cost"], "TCM cost exceeds the total cost")
    treated = None
    if "tcm_treated" in cells:
        p = word(cells["tcm_treated"], TRUE_WORDS, {0, 1})
        if p.bad:
            row.reject("tcm_treated", p.shown, "TCM flag (中医治疗标识) must be 1/0, 是/否 or true/false")
        treated = None if p.value is None else p.value == 1
    out.update(money, tcm_treated=treated)
    return out


def finite(x: float | None) -> float:
    """An amount in a sum: 0 when missing, and infinity as the largest float (as numpy's nan_to_num does)."""
    if x is None:
        return 0.0
    return math.copysign(1.7976931348623157e308, x) if math.isinf(x) else x


# ---------------------------------------------------------------- a file


@dataclass
class Reference:
    """What validation must give for one raw read: Python values, in order."""

    accepted: list[dict]  # CASE_SCHEMA fields in order, then the unmapped columns
    accepted_rows: list[int]
    rejects: list[dict]  # REJECT_SCHEMA lines
    warnings: list[dict]
    rows_read: int

    @property
    def n_rejected(self) -> int:
        return len({(r["file"], r["row"]) for r in self.rejects})


def reference_validate(raw, options: ValidationOptions | None = None, first_rows=None) -> Reference:
    """Validate `raw` (a `dipsim.io.readers.RawCases`) one row at a time. `first_rows`: the row number of each
    row's case id's first row in the whole file (0 for a missing id) when `raw` is a batch of a larger file."""
    opts = options or ValidationOptions()
    names = raw.table.column_names
    if "diagnoses" not in names or ("los_days" not in names and not {"admission_date", "discharge_date"} <= set(names)):
        raise InputError(f"{raw.source}: no column for diagnoses or los_days")
    rows = [int(r) for r in raw.rows]
    stem = raw.source.replace("\\", "/").rsplit("/", 1)[-1]
    first_at: dict[str, int] = {}
    rejects, warnings, accepted, accepted_rows = [], [], [], []
    for i, (number, cells) in enumerate(zip(rows, raw.table.to_pylist(), strict=True)):
        row = Row()
        for name, value in cells.items():
            if isinstance(value, str) and len(value) > MAX_FIELD_CHARS:
                row.reject(name, value, f"field of {len(value):,} characters, longer than a spreadsheet cell holds "
                                        f"({MAX_FIELD_CHARS:,}): not a claims value")
        if "case_id" in cells:
            case_id = text(cells["case_id"])
        else:
            case_id = f"{stem}#{number}"
            if i == 0:
                row.warn("case_id", None, "no case id column: ids made from the file name and row")
        if first_rows is not None:
            first = int(first_rows[i])
            duplicate_of = first if 0 < first != number else None
        elif case_id is None or "case_id" not in cells:
            duplicate_of = None
        else:
            duplicate_of = first_at.setdefault(case_id, number)
            duplicate_of = None if duplicate_of == number else duplicate_of
        values = check_row(cells, case_id, duplicate_of, opts, row)
        line = {"file": raw.source, "row": number, "case_id": case_id or ""}
        rejects += [{**line, "field": x.field, "value": x.value, "reason": x.reason} for x in row.rejects]
        warnings += [{**line, "field": x.field, "value": x.value, "reason": x.reason} for x in row.warnings]
        if not row.rejected:
            out = {f.name: as_schema_type(values[f.name], f) for f in CASE_FIELDS}
            accepted.append(out | {name: cells[name] for name in raw.unmapped})
            accepted_rows.append(number)
    rejects += [{"file": raw.source, "row": r["row"], "case_id": "", "field": r["field"], "value": r["value"],
                 "reason": r["reason"]} for r in raw.rejects]  # the reader's: rows it could not split or decode
    rejects.sort(key=lambda r: r["row"])  # stable: a row's lines keep their order
    warnings.sort(key=lambda r: r["row"])
    return Reference(accepted, accepted_rows, rejects, warnings, raw.rows_read)


def as_schema_type(value, f):
    """An accepted value as the accepted table holds it: int for the integer fields, float for the others,
    bool, date, text and lists as they are."""
    if value is None or f.name in ("diagnoses", "procedures"):
        return value
    kind = str(f.type)
    if kind.startswith("int"):
        return int(value)
    if kind == "double":
        return float(value)
    return value


def reference_folder(files: list[Path], folder: Path, options: ValidationOptions | None = None,
                     read=None) -> Reference:
    """A folder's partitions in sorted path order, each validated alone, then a case id accepted from an earlier
    partition rejected in a later one: `duplicate case id (first at row R of FILE)`, FILE relative to the folder.
    `read`: path -> RawCases."""
    seen: dict[str, tuple[int, str]] = {}
    total = Reference([], [], [], [], 0)
    for file in files:
        raw = read(file)
        ref = reference_validate(raw, options)
        has_ids = "case_id" in raw.table.column_names
        kept, kept_rows, extra = [], [], []
        for values, number in zip(ref.accepted, ref.accepted_rows, strict=True):
            first = seen.get(values["case_id"]) if has_ids else None
            if first is None:
                kept.append(values)
                kept_rows.append(number)
                if has_ids:
                    seen[values["case_id"]] = (number, file.relative_to(folder).as_posix())
            else:
                extra.append({"file": raw.source, "row": number, "case_id": values["case_id"], "field": "case_id",
                              "value": values["case_id"],
                              "reason": f"duplicate case id (first at row {first[0]} of {first[1]})"})
        total.accepted += kept
        total.accepted_rows += kept_rows
        total.rejects += sorted(ref.rejects + extra, key=lambda r: r["row"])
        total.warnings += ref.warnings
        total.rows_read += ref.rows_read
    return total


# ---------------------------------------------------------------- comparing


def _same(a, b) -> bool:
    """Equal values of the same Python type (lists element by element): 3 is not 3.0, True is not 1."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _first_difference(got: list, want: list, what: str) -> str:
    for i, (x, y) in enumerate(zip(got, want, strict=False)):
        if x != y if what != "accepted" else not all(_same(x.get(k), y.get(k)) for k in x.keys() | y.keys()):
            return f"{what}[{i}]:\n  validate_cases: {x!r}\n  reference:      {y!r}"
    return f"{what}: {len(got)} lines from validate_cases, {len(want)} from the reference; first extra: " \
           f"{(got[len(want):] or want[len(got):])[0]!r}"


def assert_same(result, ref: Reference, unmapped: list[str] | None = None) -> None:
    """`result` (a ValidationResult) gives exactly what the reference gives, and loses no row."""
    assert result.rows_read == result.n_accepted + result.n_rejected, "rows lost"
    assert result.rows_read == ref.rows_read, (result.rows_read, ref.rows_read)
    for what, got, want in (("rejects", result.rejects.to_pylist(), ref.rejects),
                            ("warnings", result.warnings.to_pylist(), ref.warnings)):
        assert got == want, _first_difference(got, want, what)
    assert result.accepted_rows.tolist() == ref.accepted_rows
    if unmapped is not None:
        assert result.accepted.column_names == [f.name for f in CASE_FIELDS] + unmapped
    got = result.accepted.to_pylist()
    assert len(got) == len(ref.accepted) and all(
        _same(x.get(k), y.get(k)) for x, y in zip(got, ref.accepted, strict=True) for k in x.keys() | y.keys()), \
        _first_difference(got, ref.accepted, "accepted")
    assert result.n_rejected == ref.n_rejected
