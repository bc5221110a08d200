"""The case and hospital schema: one place for canonical names, types, units and Chinese labels.

A case is one inpatient stay as reported in the 医保结算清单 / 病案首页 (docs/domain.md §3). Every reader maps its
input onto these names; everything downstream (codes, grouping, pricing, settlement) uses them and nothing else.

Code lists (`diagnoses`, `procedures`) are Arrow ``list<string>`` columns with the *principal* code first.
Money is yuan as float64 (rounded to fen only at the settlement boundary, DESIGN.md "Money").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


@dataclass(frozen=True)
class Field:
    """One canonical column: its Arrow type, Chinese label, description and unit."""

    name: str
    type: pa.DataType
    label_zh: str
    description: str
    unit: str = ""


CODE_LIST = pa.list_(pa.string())

# 离院方式 (病案首页 "离院方式" field): the six official values.
DISCHARGE_MODES: dict[int, str] = {
    1: "医嘱离院",
    2: "医嘱转院",
    3: "医嘱转社区卫生服务机构/乡镇卫生院",
    4: "非医嘱离院",
    5: "死亡",
    9: "其他",
}
DISCHARGE_DEATH = 5

# 性别: GB/T 2261.1 codes; 0 = unknown is kept so that a missing sex never drops a claim.
SEXES: dict[int, str] = {0: "未知", 1: "男", 2: "女", 9: "未说明"}

# 险种类型: the two inpatient insurance schemes that form separate settlement pools (docs/domain.md §2).
INSURANCE_TYPES: dict[str, str] = {"employee": "职工", "resident": "居民"}

CASE_FIELDS: tuple[Field, ...] = (
    Field("case_id", pa.string(), "病案号/结算清单流水号", "unique id of the stay"),
    Field("patient_id", pa.string(), "患者ID", "pseudonymised patient id (links readmissions)"),
    Field("hospital_id", pa.string(), "定点医疗机构编码", "designated hospital id"),
    Field("pool", pa.string(), "统筹区", "pooling region code (统筹区划)"),
    Field("insurance_type", pa.string(), "险种类型", "employee (职工) or resident (居民)"),
    Field("admission_date", pa.date32(), "入院日期", "admission date"),
    Field("discharge_date", pa.date32(), "出院日期", "discharge date"),
    Field("los_days", pa.int32(), "住院天数", "length of stay", unit="day"),
    Field("age_years", pa.int16(), "年龄", "age at admission", unit="year"),
    Field("age_days", pa.int32(), "新生儿年龄天", "age in days (newborns; some exports fill it for all)", unit="day"),
    Field("birth_weight_g", pa.int32(), "新生儿出生体重", "newborn birth weight", unit="g"),
    Field("sex", pa.int8(), "性别", "1 male, 2 female, 0 unknown"),
    Field("discharge_mode", pa.int8(), "离院方式", "1-5 or 9, see DISCHARGE_MODES"),
    Field("diagnoses", CODE_LIST, "诊断编码", "ICD-10 医保版 2.0 codes, principal first"),
    Field("procedures", CODE_LIST, "手术操作编码", "ICD-9-CM-3 医保版 2.0 codes, principal first"),
    Field("ventilation_hours", pa.float64(), "有创呼吸机使用时间", "invasive ventilation", unit="hour"),
    Field("total_cost", pa.float64(), "医疗总费用", "total billed cost of the stay", unit="yuan"),
    Field("fund_paid", pa.float64(), "统筹基金支付", "paid by the pooled fund", unit="yuan"),
    Field("patient_paid", pa.float64(), "个人支付", "paid by the patient (self-pay and co-pay)", unit="yuan"),
    Field("tcm_diagnosis", pa.string(), "中医诊断编码", "TCM diagnosis code (中医病证)"),
    Field("tcm_cost", pa.float64(), "中医治疗费用", "cost of TCM treatment within the stay", unit="yuan"),
    Field("tcm_treated", pa.bool_(), "中医治疗标识", "the stay had TCM treatment"),
    Field("department", pa.string(), "科室", "discharging department code"),
    Field("insurer_drg", pa.string(), "医保实际分组结果", "the group the insurer paid (when the export has it)"),
)

CASE_FIELD_BY_NAME: dict[str, Field] = {f.name: f for f in CASE_FIELDS}
CASE_SCHEMA = pa.schema([pa.field(f.name, f.type) for f in CASE_FIELDS])

# 医疗机构等级 (hospital level), highest first; the order is used for sorting and for coefficient tables.
HOSPITAL_LEVELS: tuple[str, ...] = ("三级甲等", "三级乙等", "三级", "二级甲等", "二级乙等", "二级", "一级")
# 机构类型: general, traditional Chinese medicine, specialist.
HOSPITAL_TYPES: tuple[str, ...] = ("综合", "中医", "专科")

HOSPITAL_FIELDS: tuple[Field, ...] = (
    Field("hospital_id", pa.string(), "定点医疗机构编码", "designated hospital id"),
    Field("name", pa.string(), "机构名称", "hospital name"),
    Field("level", pa.string(), "医疗机构等级", "one of HOSPITAL_LEVELS"),
    Field("type", pa.string(), "机构类型", "one of HOSPITAL_TYPES"),
    Field("pool", pa.string(), "统筹区", "pooling region the hospital is settled in"),
    Field("coefficient_override", pa.float64(), "医疗机构系数(指定)", "fixed hospital coefficient, if set"),
)
HOSPITAL_SCHEMA = pa.schema([pa.field(f.name, f.type) for f in HOSPITAL_FIELDS])

# Rejects file (one row per problem; a rejected input row may have several).
REJECT_SCHEMA = pa.schema(
    [
        ("file", pa.string()),
        ("row", pa.int64()),  # 1-based data row number: row 1 is the first row under the header
        ("case_id", pa.string()),
        ("field", pa.string()),
        ("value", pa.string()),
        ("reason", pa.string()),
    ]
)


def float_column(table: pa.Table, name: str, missing: float = np.nan) -> np.ndarray:
    """A column as float64 with `missing` where it is null, or `missing` everywhere when the table has no such
    column: how pricing, grouping and the screens read a numeric field of the case schema."""
    if name not in table.column_names:
        return np.full(table.num_rows, missing, dtype=np.float64)
    return pc.fill_null(pc.cast(table[name], pa.float64()), missing).to_numpy(zero_copy_only=False)
