"""Map the column headers of real claims exports (Chinese or English) onto the canonical case schema.

Exports of the 医保结算清单 / 病案首页 name the same field many ways (总费用, 医疗总费用, 住院总费用(元),
TOTAL_COST...).
Headers are compared after `header_key` (full-width to ASCII, case, spaces, punctuation and a trailing unit in
brackets removed), so `住院天数（天）` and `住院天数` match. A user extends or overrides the table with a TOML file:

    [columns]
    "出院科别" = "department"
    "费用合计" = "total_cost"

Some exports give the principal code and the other codes in separate columns (主要诊断编码, 其他诊断编码1..N); those
map to the pseudo-columns below and the reader joins them into one code list, principal first.
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from pathlib import Path

from dipsim.schema import CASE_FIELD_BY_NAME

from .errors import InputError

# Pseudo-columns for exports that split code lists over several columns; joined by the reader.
PRINCIPAL_DIAGNOSIS = "_principal_diagnosis"
OTHER_DIAGNOSES = "_other_diagnoses"
PRINCIPAL_PROCEDURE = "_principal_procedure"
OTHER_PROCEDURES = "_other_procedures"
SPLIT_CODE_COLUMNS = {
    "diagnoses": (PRINCIPAL_DIAGNOSIS, OTHER_DIAGNOSES),
    "procedures": (PRINCIPAL_PROCEDURE, OTHER_PROCEDURES),
}

# canonical name -> aliases seen in real exports (matching ignores case, spaces, punctuation and bracketed units).
HEADER_ALIASES: dict[str, tuple[str, ...]] = {
    "case_id": ("case_id", "caseid", "病案号", "病例号", "病历号", "住院号", "结算清单流水号", "清单流水号",
                "结算ID", "就诊ID", "病例编号", "id"),
    "patient_id": ("patient_id", "患者ID", "患者编号", "人员编号", "个人编号", "参保人编号", "身份证号", "证件号码"),
    "hospital_id": ("hospital_id", "定点医疗机构编码", "医疗机构编码", "定点医药机构编号", "机构编码", "医院编码",
                    "医院编号", "hospital"),
    "pool": ("pool", "统筹区", "统筹区编码", "统筹区划", "参保地", "region"),
    "insurance_type": ("insurance_type", "险种类型", "险种", "医保类型", "参保类型", "insurance"),
    "admission_date": ("admission_date", "入院日期", "入院时间", "admission", "admit_date"),
    "discharge_date": ("discharge_date", "出院日期", "出院时间", "discharge", "dis_date"),
    "los_days": ("los_days", "los", "住院天数", "实际住院天数", "length_of_stay"),
    "age_years": ("age_years", "age", "年龄", "年龄岁", "年龄(岁)", "年龄(年)"),
    "age_days": ("age_days", "新生儿年龄天", "年龄天", "年龄(天)", "新生儿年龄", "不足一周岁年龄", "天龄"),
    "birth_weight_g": ("birth_weight_g", "birth_weight", "新生儿出生体重", "出生体重", "新生儿出生体重克"),
    "sex": ("sex", "gender", "性别"),
    "discharge_mode": ("discharge_mode", "离院方式", "出院方式"),
    "diagnoses": ("diagnoses", "diagnosis_codes", "诊断编码", "诊断代码", "出院诊断编码", "诊断编码列表", "诊断"),
    "procedures": ("procedures", "procedure_codes", "手术操作编码", "手术及操作编码", "手术编码", "手术操作代码",
                   "手术操作"),
    "ventilation_hours": ("ventilation_hours", "有创呼吸机使用时间", "呼吸机使用时间", "有创呼吸机使用小时",
                          "呼吸机使用小时数"),
    "total_cost": ("total_cost", "总费用", "医疗总费用", "住院总费用", "费用总额", "总金额", "cost"),
    "fund_paid": ("fund_paid", "统筹基金支付", "基金支付", "统筹支付", "医保基金支付", "统筹基金支付金额"),
    "patient_paid": ("patient_paid", "个人支付", "个人负担", "个人自付", "个人支付金额", "自付金额"),
    "tcm_diagnosis": ("tcm_diagnosis", "中医诊断编码", "中医诊断代码", "中医主病编码", "中医诊断"),
    "tcm_cost": ("tcm_cost", "中医治疗费用", "中医类费用", "中医费用", "中医治疗费"),
    "tcm_treated": ("tcm_treated", "中医治疗标识", "是否中医治疗", "中医治疗"),
    "department": ("department", "科室", "出院科室", "出院科别", "科别"),
    "insurer_drg": ("insurer_drg", "医保实际分组结果", "DRG编码", "DRG分组", "分组结果", "医保分组"),
    PRINCIPAL_DIAGNOSIS: ("主要诊断编码", "主要诊断代码", "主诊断编码", "主诊断代码", "principal_diagnosis"),
    OTHER_DIAGNOSES: ("其他诊断编码", "其他诊断代码", "次要诊断编码", "其它诊断编码", "secondary_diagnoses",
                      "other_diagnoses"),
    PRINCIPAL_PROCEDURE: ("主要手术操作编码", "主要手术编码", "主手术操作编码", "主要手术及操作编码",
                          "principal_procedure"),
    OTHER_PROCEDURES: ("其他手术操作编码", "其他手术编码", "其他手术及操作编码", "其它手术操作编码",
                       "other_procedures"),
}

_BRACKETED = re.compile(r"[(\[（【][^)\]）】]*[)\]）】]$")
_NOISE = re.compile(r"[\s_\-./:：·]+")
_TRAILING_NUMBER = re.compile(r"\d+$")


def header_key(header: str, strip_unit: bool = True) -> str:
    """Comparison key of a header: NFKC, lower case, no spaces or punctuation, and (by default) no trailing
    bracketed unit: `总费用（元）` -> `总费用`. With strip_unit=False the bracket stays, so 年龄(天) != 年龄."""
    key = unicodedata.normalize("NFKC", str(header)).strip().lstrip("\ufeff").lower()
    if strip_unit:
        key = _BRACKETED.sub("", key)
    return _NOISE.sub("", key)


def _alias_index(extra: dict[str, str] | None) -> dict[str, str]:
    index: dict[str, str] = {}
    for canonical, aliases in HEADER_ALIASES.items():
        for alias in aliases:
            index[header_key(alias, strip_unit=False)] = canonical
    for alias, canonical in (extra or {}).items():
        if canonical not in CASE_FIELD_BY_NAME and canonical not in HEADER_ALIASES:
            raise InputError(f"header mapping: {alias!r} -> {canonical!r}: unknown canonical column")
        index[header_key(alias, strip_unit=False)] = canonical
    return index


def load_header_mapping(path: str | Path) -> dict[str, str]:
    """Read a user's header mapping file (TOML, table [columns] of "their header" = "canonical_name")."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"{path}: cannot read header mapping: {exc}") from exc
    columns = data.get("columns")
    if not isinstance(columns, dict) or not all(isinstance(v, str) for v in columns.values()):
        raise InputError(f"{path}: expected a [columns] table of \"header\" = \"canonical_name\" strings")
    _alias_index(columns)  # validate every target now, before any data is read
    return columns


def map_header_list(headers: list[str], extra: dict[str, str] | None = None, source: str = "") -> list[str | None]:
    """The canonical name of each header, by position (None: it maps to nothing and is kept as it is).

    Numbered or repeated split-code columns (其他诊断编码1, 其他诊断编码2, ... or 其他诊断编码 twice) all map to the
    same pseudo-column and are joined in order. Two columns for one single-valued field (two 总费用 cells, or 总费用
    and 医疗总费用) are an error naming both positions: we would otherwise silently pick one.
    """
    index = _alias_index(extra)
    out: list[str | None] = []
    taken: dict[str, tuple[int, str]] = {}
    for position, header in enumerate(headers, start=1):
        key = header_key(header)
        canonical = index.get(header_key(header, strip_unit=False)) or index.get(key)
        if canonical is None and key:
            stripped = _TRAILING_NUMBER.sub("", key)
            if index.get(stripped) in (OTHER_DIAGNOSES, OTHER_PROCEDURES):
                canonical = index[stripped]
        if canonical is not None and canonical not in (OTHER_DIAGNOSES, OTHER_PROCEDURES):
            if canonical in taken:
                first, first_header = taken[canonical]
                raise InputError(
                    f"{source}: column {first} {first_header!r} and column {position} {header!r} both map to "
                    f"{canonical!r}; keep one, or map one elsewhere with a header mapping file (--mapping)"
                )
            taken[canonical] = (position, header)
        out.append(canonical)
    return out


def map_headers(headers: list[str], extra: dict[str, str] | None = None, source: str = "") -> dict[str, str]:
    """{header: canonical name} for every header that maps (`map_header_list`); the others are left out."""
    return {h: c for h, c in zip(headers, map_header_list(headers, extra, source)) if c is not None}
