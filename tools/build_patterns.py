"""Build the synthetic generator's pattern library from the real reference cases.

    python tools/build_patterns.py [--source ../shared/reference/cases] [--lists ../shared/reference/chs-drg-1.1/lists]

Reads the two real, anonymised case files in ``../shared/reference/cases`` (``grouped_cases_chs_drg_1.1.csv``: 6,738
cases without cost; ``costed_cases.csv``: 13,239 cases with 总费用) and writes, into ``dipsim/data/``:

- ``patterns.parquet``: one row per distinct code combination (principal diagnosis + set of secondary diagnoses +
  principal procedure + set of other procedures), with its case count and the smoothed distributions the generator
  samples from (sex, age, newborn age/weight, LOS, death, cost).  Costs come from the costed cases where the pattern
  has them, else from a log-cost model fitted on the costed cases.
- ``severity_codes.parquet``: the most frequent real secondary diagnoses that are on the CHS-DRG 1.1 MCC or CC list
  (used for the upcoding behaviour); the patterns carry a bitmask of the severity codes each one may receive (not
  already present and not cancelled by the pattern's principal diagnosis through the CC exclusion tables).
- ``PATTERNS.md``: provenance (source files and sha256), what is aggregated, the cost model and its fit.

The product never reads ``../shared``: only these generated files ship.  The script is deterministic: the same source
files give byte-identical outputs.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from dipsim.io.writers import sha256_file

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = REPO.parent / "shared" / "reference" / "cases"
DEFAULT_LISTS = REPO.parent / "shared" / "reference" / "chs-drg-1.1" / "lists"
DEFAULT_CODES = REPO.parent / "shared" / "reference" / "codes" / "icd10_yb_2.0.txt"
OUT_DIR = REPO / "dipsim" / "data"

GROUPED_FILE = "grouped_cases_chs_drg_1.1.csv"
COSTED_FILE = "costed_cases.csv"

N_SEVERITY_CODES = 60
NEOPLASM_PREFIXES = ("C", "D0", "D1", "D2", "D3", "D4")  # fits a uint64 bitmask per pattern
NEWBORN_MAX_AGE_DAYS = 28  # CHS-DRG MDCP: age < 29 days

# Shrinkage strengths (pseudo-cases) for pooling a pattern's few cases towards broader estimates.
K_CATEGORY_COST = 10.0  # principal-diagnosis category effect in the cost model
K_SD = 3.0  # within-pattern standard deviations towards the pooled one
K_DEATH = 20.0  # death share towards the overall share
K_SEX = 2.0  # male share towards the category's share
DEATH_PRIOR = 0.003  # regional inpatient death share is a few per mille; the sources have ~0.1%

# ICD-10 categories that only occur in one sex (pregnancy and the genital organs).
FEMALE_ONLY_PREFIXES = (
    "O", "Z32", "Z33", "Z34", "Z35", "Z36", "Z37", "Z39", "C51", "C52", "C53", "C54", "C55", "C56", "C57", "C58",
    "D06", "D25", "D26", "D27", "D28", "D39", "N7", "N8", "N90", "N91", "N92", "N93", "N94", "N95", "N96", "N97", "N98",
)
MALE_ONLY_PREFIXES = ("C60", "C61", "C62", "C63", "D29", "D40", "N40", "N41", "N42", "N43", "N44", "N45", "N46",
                      "N47", "N48", "N49", "N50", "N51")


def split_codes(cell: str) -> list[str]:
    return [c.strip() for c in cell.replace("，", ",").split(",") if c.strip()]


def read_cases(path: Path, costed: bool) -> pd.DataFrame:
    """Read one source file into plain columns; drops rows without a principal diagnosis or any age."""
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    out = pd.DataFrame(
        {
            "sex": pd.to_numeric(raw["性别"], errors="coerce"),
            "age": pd.to_numeric(raw["年龄"], errors="coerce"),
            "age_days": pd.to_numeric(raw["新生儿年龄天"], errors="coerce"),
            "birth_weight": pd.to_numeric(raw["新生儿出生体重"], errors="coerce"),
            "department": raw["科室"].str.strip(),
            "los": pd.to_numeric(raw["住院天数"], errors="coerce"),
            "mode": pd.to_numeric(raw["离院方式"], errors="coerce").fillna(1),
            "dx": raw["诊断编码"].map(split_codes),
            "px": raw["手术操作编码"].map(split_codes),
        }
    )
    out["cost"] = pd.to_numeric(raw["总费用"], errors="coerce") if costed else np.nan
    # A missing age in years is recovered from the age in days; a row with neither is dropped.
    out["age"] = out["age"].fillna(np.floor(out["age_days"] / 365.25))
    keep = out["dx"].map(len).gt(0) & out["age"].notna() & out["los"].notna()
    if costed:
        keep &= out["cost"].gt(0)
    dropped = int((~keep).sum())
    out = out[keep].reset_index(drop=True)
    out["age_days"] = out["age_days"].where(out["age"] < 1)  # days only matter for infants
    out["source"] = "costed" if costed else "grouped"
    return out, dropped


def dedupe(codes: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for c in codes:
        if c not in seen:
            seen.add(c)
            out.append(c)
    return out


def pattern_key(dx: list[str], px: list[str]) -> str:
    """Principal diagnosis + sorted set of secondaries | principal procedure + sorted set of other procedures."""
    p_dx = dx[0]
    s_dx = sorted(set(dx[1:]) - {p_dx})
    p_px = px[0] if px else ""
    s_px = sorted(set(px[1:]) - {p_px})
    return "|".join([p_dx, ",".join(s_dx), p_px, ",".join(s_px)])


def sex_constraint(codes: list[str]) -> float | None:
    """0.0 if any code is female-only, 1.0 if any is male-only, else None."""
    if any(c.startswith(FEMALE_ONLY_PREFIXES) for c in codes):
        return 0.0
    if any(c.startswith(MALE_ONLY_PREFIXES) for c in codes):
        return 1.0
    return None


# ---------------------------------------------------------------------------------------------------------------
# Cost model: log(total cost) on stay features + a shrunken principal-diagnosis-category effect
# ---------------------------------------------------------------------------------------------------------------

FEATURE_NAMES = ("intercept", "log1p_los", "has_procedure", "log1p_n_procedures", "log1p_n_secondary_dx", "death",
                 "age_0", "age_1_17", "age_65_plus")


def design(df: pd.DataFrame) -> np.ndarray:
    n_px = df["px"].map(len).to_numpy(float)
    n_sdx = df["dx"].map(len).to_numpy(float) - 1
    age = df["age"].to_numpy(float)
    return np.column_stack(
        [
            np.ones(len(df)),
            np.log1p(df["los"].to_numpy(float)),
            (n_px > 0).astype(float),
            np.log1p(n_px),
            np.log1p(n_sdx),
            (df["mode"].to_numpy() == 5).astype(float),
            (age < 1).astype(float),
            ((age >= 1) & (age < 18)).astype(float),
            (age >= 65).astype(float),
        ]
    )


class CostModel:
    """Least squares of log cost on features, with a category effect shrunk by n/(n+k) (two backfitting rounds)."""

    def fit(self, x: np.ndarray, cat: np.ndarray, y: np.ndarray) -> CostModel:
        effect = np.zeros(len(y))
        for _ in range(3):
            self.beta, *_ = np.linalg.lstsq(x, y - effect, rcond=None)
            resid = y - x @ self.beta
            s = pd.Series(resid).groupby(cat).agg(["sum", "count"])
            self.category_effect = (s["sum"] / (s["count"] + K_CATEGORY_COST)).to_dict()
            effect = self.effect(cat)
        self.resid_sd = float(np.std(y - self.predict(x, cat), ddof=x.shape[1]))
        return self

    def effect(self, cat: np.ndarray) -> np.ndarray:
        return np.array([self.category_effect.get(c, 0.0) for c in cat])

    def predict(self, x: np.ndarray, cat: np.ndarray) -> np.ndarray:
        return x @ self.beta + self.effect(cat)


def r_squared(y: np.ndarray, pred: np.ndarray) -> float:
    return float(1 - np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2))


def fit_cost_model(costed: pd.DataFrame) -> tuple[CostModel, dict]:
    x = design(costed)
    cat = costed["dx"].map(lambda d: d[0][:3]).to_numpy()
    y = np.log(costed["cost"].to_numpy(float))
    model = CostModel().fit(x, cat, y)
    # Five-fold cross-validation with folds fixed by row position (deterministic).
    fold = np.arange(len(y)) % 5
    cv_pred = np.empty(len(y))
    for k in range(5):
        train, test = fold != k, fold == k
        m = CostModel().fit(x[train], cat[train], y[train])
        cv_pred[test] = m.predict(x[test], cat[test])
    base = np.linalg.lstsq(x[:, :2], y, rcond=None)[0]
    fit = {
        "n": len(y),
        "r2_in_sample": r_squared(y, model.predict(x, cat)),
        "r2_cv5": r_squared(y, cv_pred),
        "r2_los_only": r_squared(y, x[:, :2] @ base),
        "resid_sd": model.resid_sd,
        "n_categories": len(model.category_effect),
        "beta": {n: float(b) for n, b in zip(FEATURE_NAMES, model.beta)},
    }
    return model, fit


# ---------------------------------------------------------------------------------------------------------------
# Severity codes (MCC/CC) for the upcoding behaviour
# ---------------------------------------------------------------------------------------------------------------


def read_list(path: Path) -> dict[str, int]:
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) >= 2:
            out[parts[0]] = int(parts[1])
    return out


def read_cce(path: Path) -> dict[int, set[str]]:
    tables: dict[int, set[str]] = defaultdict(set)
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) >= 2:
            tables[int(parts[1])].add(parts[0])
    return tables


def read_names(path: Path) -> dict[str, str]:
    names = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            code, _, name = line.partition(" ")
            names[code.strip()] = name.strip()
    return names


def severity_codes(cases: pd.DataFrame, lists_dir: Path, codes_file: Path) -> pd.DataFrame:
    mcc = read_list(lists_dir / "MCC.dat")
    cc = read_list(lists_dir / "CC.dat")
    names = read_names(codes_file)
    freq = Counter(c for dx in cases["dx"] for c in set(dx[1:]))
    rows = []
    for code, n in freq.items():
        if code.startswith(NEOPLASM_PREFIXES):
            continue  # a coder adds complications, not tumours, to raise severity
        if code in mcc:
            rows.append((code, "MCC", mcc[code], n))
        elif code in cc:
            rows.append((code, "CC", cc[code], n))
    rows.sort(key=lambda r: (-r[3], r[0]))
    rows = rows[:N_SEVERITY_CODES]
    return pd.DataFrame(
        {
            "code": [r[0] for r in rows],
            "list": [r[1] for r in rows],
            "exclusion_table": np.array([r[2] for r in rows], dtype=np.int32),
            "frequency": np.array([r[3] for r in rows], dtype=np.int32),
            "name_zh": [names.get(r[0], "") for r in rows],
        }
    )


# ---------------------------------------------------------------------------------------------------------------
# Aggregation
# ---------------------------------------------------------------------------------------------------------------


def pooled_sd(values: pd.Series, groups: pd.Series) -> float:
    """Within-group sd pooled over the groups with two or more values."""
    g = values.groupby(groups)
    ss = ((values - g.transform("mean")) ** 2).groupby(groups).sum()
    n = g.count()
    multi = n > 1
    return float(np.sqrt(ss[multi].sum() / max(int((n[multi] - 1).sum()), 1)))


def shrink_sd(sd: np.ndarray, n: np.ndarray, pooled: float) -> np.ndarray:
    sd = np.nan_to_num(sd)
    dof = np.maximum(n - 1, 0)
    return np.sqrt((dof * sd**2 + K_SD * pooled**2) / (dof + K_SD))


def build(source: Path, lists_dir: Path, codes_file: Path, out_dir: Path) -> dict:
    grouped, dropped_g = read_cases(source / GROUPED_FILE, costed=False)
    costed, dropped_c = read_cases(source / COSTED_FILE, costed=True)
    model, fit = fit_cost_model(costed)

    cases = pd.concat([costed, grouped], ignore_index=True)
    cases["dx"] = cases["dx"].map(dedupe)
    cases["category"] = cases["dx"].map(lambda d: d[0][:3])
    cases["key"] = [pattern_key(d, p) for d, p in zip(cases["dx"], cases["px"])]
    cases["log_los"] = np.log1p(cases["los"].astype(float))
    cases["death"] = (cases["mode"] == 5).astype(float)
    cases["male"] = (cases["sex"] == 1).astype(float)
    cases["log_cost"] = np.log(cases["cost"])
    cases["pred_log_cost"] = model.predict(design(cases), cases["category"].to_numpy())
    # The cost a pattern's cases would have had at the pattern's mean LOS: the generator re-applies the LOS slope.
    slope = fit["beta"]["log1p_los"]

    g = cases.groupby("key", sort=True)
    agg = g.agg(
        n=("key", "size"),
        n_costed=("log_cost", "count"),
        male=("male", "mean"),
        age_mean=("age", "mean"),
        age_sd=("age", "std"),
        age_min=("age", "min"),
        age_max=("age", "max"),
        age_days_mean=("age_days", "mean"),
        age_days_sd=("age_days", "std"),
        bw_mean=("birth_weight", "mean"),
        bw_sd=("birth_weight", "std"),
        los_mu=("log_los", "mean"),
        los_sd=("log_los", "std"),
        deaths=("death", "sum"),
        pred_mu=("pred_log_cost", "mean"),
        category=("category", "first"),
    )
    # Representative code lists: the first case of the pattern (costed file first), repeats removed from diagnoses.
    first = g.head(1).set_index("key").loc[agg.index]
    agg["diagnoses"] = first["dx"].to_list()
    agg["procedures"] = first["px"].to_list()
    agg["department"] = g["department"].agg(lambda s: s.value_counts().sort_index().idxmax())

    # Cost at the pattern's mean LOS, observed where costed (each case moved to the mean LOS by the model slope).
    cases["cost_at_mean_los"] = cases["log_cost"] - slope * (cases["log_los"] - g["log_los"].transform("mean"))
    cost = cases.groupby("key", sort=True)["cost_at_mean_los"].agg(["mean", "std"])
    observed = agg["n_costed"] > 0
    cost_pool_sd = pooled_sd(cases.loc[cases["cost"].notna(), "cost_at_mean_los"],
                             cases.loc[cases["cost"].notna(), "key"])
    agg["cost_mu"] = np.where(observed, cost["mean"], agg["pred_mu"])
    agg["cost_sd"] = np.where(
        observed, shrink_sd(cost["std"].to_numpy(), agg["n_costed"].to_numpy(), cost_pool_sd), model.resid_sd
    )

    los_pool_sd = pooled_sd(cases["log_los"], cases["key"])
    agg["los_sd"] = shrink_sd(agg["los_sd"].to_numpy(), agg["n"].to_numpy(), los_pool_sd)
    age_pool_sd = pooled_sd(cases["age"].astype(float), cases["key"])
    agg["age_sd"] = shrink_sd(agg["age_sd"].to_numpy(), agg["n"].to_numpy(), min(age_pool_sd, 8.0))

    # Sex: forced by sex-specific codes, else shrunk towards the principal category's male share.
    cat_male = cases.groupby("category")["male"].mean()
    overall_male = float(cases["male"].mean())
    cat_male = (cat_male * cases.groupby("category").size() + K_SEX * overall_male) / (
        cases.groupby("category").size() + K_SEX
    )
    prior = agg["category"].map(cat_male).to_numpy()
    male = (agg["male"].to_numpy() * agg["n"].to_numpy() + K_SEX * prior) / (agg["n"].to_numpy() + K_SEX)
    forced = np.array([sex_constraint(d) for d in agg["diagnoses"]], dtype=object)
    male = np.where(forced == None, male, forced).astype(float)  # noqa: E711 (object array comparison)
    agg["male_share"] = male

    agg["death_share"] = (agg["deaths"] + K_DEATH * DEATH_PRIOR) / (agg["n"] + K_DEATH)

    # Severity codes and, per pattern, which of them may still be added (not present, not excluded by the principal).
    sev = severity_codes(cases, lists_dir, codes_file)
    cce = read_cce(lists_dir / "CCE.dat")
    masks = np.zeros(len(agg), dtype=np.uint64)
    for j, (code, table) in enumerate(zip(sev["code"], sev["exclusion_table"])):
        excluded = cce.get(int(table), set())
        ok = np.array([(code not in d) and (d[0] not in excluded) for d in agg["diagnoses"]])
        masks |= ok.astype(np.uint64) << np.uint64(j)
    agg["severity_mask"] = masks

    # Order: most frequent first, then by key, so the file is stable and its head is readable.
    agg = agg.reset_index().sort_values(["n", "key"], ascending=[False, True], kind="stable").reset_index(drop=True)

    def f32(col):
        return pa.array(np.asarray(col, dtype=np.float32))

    def f32_nullable(col):
        arr = np.asarray(col, dtype=np.float64)
        return pa.array(arr.astype(np.float32), mask=np.isnan(arr))

    table = pa.table(
        {
            "diagnoses": pa.array(agg["diagnoses"].to_list(), type=pa.list_(pa.string())),
            "procedures": pa.array(agg["procedures"].to_list(), type=pa.list_(pa.string())),
            "n_cases": pa.array(agg["n"].to_numpy(np.int32)),
            "n_costed": pa.array(agg["n_costed"].to_numpy(np.int32)),
            "male_share": f32(agg["male_share"].round(4)),
            "age_mean": f32(agg["age_mean"].round(2)),
            "age_sd": f32(agg["age_sd"].round(3)),
            "age_min": pa.array(agg["age_min"].to_numpy(np.int16)),
            "age_max": pa.array(agg["age_max"].to_numpy(np.int16)),
            "age_days_mean": f32_nullable(agg["age_days_mean"].round(1)),
            "age_days_sd": f32_nullable(agg["age_days_sd"].round(2)),
            "birth_weight_mean": f32_nullable(agg["bw_mean"].where(agg["age_days_mean"] <= NEWBORN_MAX_AGE_DAYS)),
            "birth_weight_sd": f32_nullable(agg["bw_sd"].where(agg["age_days_mean"] <= NEWBORN_MAX_AGE_DAYS).round(1)),
            "los_mu": f32(agg["los_mu"].round(4)),
            "los_sd": f32(agg["los_sd"].round(4)),
            "death_share": f32(agg["death_share"].round(5)),
            "cost_mu": f32(agg["cost_mu"].round(4)),
            "cost_sd": f32(agg["cost_sd"].round(4)),
            "cost_observed": pa.array((agg["n_costed"] > 0).to_numpy()),
            "department": pa.array(agg["department"].to_list(), type=pa.string()),
            "severity_mask": pa.array(agg["severity_mask"].to_numpy(np.uint64)),
        }
    )
    meta = {
        "los_cost_elasticity": round(slope, 6),
        "cost_resid_sd": round(model.resid_sd, 6),
        "cost_pooled_within_sd": round(cost_pool_sd, 6),
        "los_pooled_within_sd": round(los_pool_sd, 6),
        "severity_codes": sev["code"].to_list(),
    }
    table = table.replace_schema_metadata({"dipsim.patterns": json.dumps(meta, ensure_ascii=False, sort_keys=True)})
    out_dir.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out_dir / "patterns.parquet", compression="zstd", compression_level=19)
    pq.write_table(pa.Table.from_pandas(sev, preserve_index=False), out_dir / "severity_codes.parquet",
                   compression="zstd")

    stats = {
        "sources": {
            GROUPED_FILE: sha256_file(source / GROUPED_FILE),
            COSTED_FILE: sha256_file(source / COSTED_FILE),
            "MCC.dat": sha256_file(lists_dir / "MCC.dat"),
            "CC.dat": sha256_file(lists_dir / "CC.dat"),
            "CCE.dat": sha256_file(lists_dir / "CCE.dat"),
        },
        "rows_read": {GROUPED_FILE: len(grouped) + dropped_g, COSTED_FILE: len(costed) + dropped_c},
        "rows_dropped": {GROUPED_FILE: dropped_g, COSTED_FILE: dropped_c},
        "cases_used": len(cases),
        "patterns": len(table),
        "patterns_costed": int(observed.sum()),
        "singletons": int((agg["n"] == 1).sum()),
        "newborn_patterns": int((agg["age_days_mean"] <= NEWBORN_MAX_AGE_DAYS).sum()),
        "distinct_codes": len({c for d in agg["diagnoses"] for c in d} | {c for p in agg["procedures"] for c in p}),
        "patterns_kb": round((out_dir / "patterns.parquet").stat().st_size / 1024, 1),
        "patterns_sha256": sha256_file(out_dir / "patterns.parquet"),
        "severity_sha256": sha256_file(out_dir / "severity_codes.parquet"),
        "severity_mcc": int((sev["list"] == "MCC").sum()),
        "severity_cc": int((sev["list"] == "CC").sum()),
        "fit": fit,
        "meta": meta,
    }
    (out_dir / "PATTERNS.md").write_text(render_doc(stats, sev), encoding="utf-8")
    return stats


def render_doc(s: dict, sev: pd.DataFrame) -> str:
    fit = s["fit"]
    beta = "\n".join(f"| {k} | {v:+.4f} |" for k, v in fit["beta"].items())
    src = "\n".join(f"| `{k}` | `{v}` |" for k, v in s["sources"].items())
    top = ", ".join(f"{c} ({lst})" for c, lst in zip(sev["code"][:12], sev["list"][:12]))
    return f"""# Pattern library for the synthetic region generator (`dipsim synth`)

Generated by `tools/build_patterns.py`; do not edit by hand. Re-running the script on the same sources gives
byte-identical files. The generator (`dipsim/synth/`) reads only these files, never `../shared`.

## Provenance
| source file | sha256 |
|---|---|
{src}

Case files: `../shared/reference/cases/` (real inpatient cases published with OpenDRG; anonymised at source: record
numbers removed; no licence stated). CHS-DRG 1.1 MCC/CC/exclusion lists: OpenDRG/DRG_Python (Apache-2.0).
**No identifier is kept**: no case id, no record number, no date; only code combinations and aggregate
statistics. Most combinations occur once in the sources, so a pattern's statistics are those of one real
(anonymised, public) stay, smoothed by the pooled spreads below; the generator then jitters age, LOS and cost.

Rows read: {', '.join(f"`{k}` {v}" for k, v in s['rows_read'].items())}; dropped (no principal diagnosis, no
age at all, or no positive cost): {', '.join(f"`{k}` {v}" for k, v in s['rows_dropped'].items())}. Cases used:
{s['cases_used']}.

## `patterns.parquet` ({s['patterns']} rows, {s['patterns_kb']} KB, sha256 `{s['patterns_sha256']}`)
One row per distinct code combination: principal diagnosis + set of secondary diagnoses + principal procedure + set
of other procedures (order of secondaries and repeats ignored for the key). The stored lists are those of the
pattern's first case (costed file first), repeated diagnoses removed, procedure repeats kept as coded.
{s['singletons']} patterns are singletons; {s['patterns_costed']} have observed costs; {s['newborn_patterns']} are newborn
patterns (mean age < 29 days); {s['distinct_codes']} distinct codes.

| column | meaning |
|---|---|
| diagnoses, procedures | ICD-10 / ICD-9-CM-3 医保版 codes, principal first |
| n_cases, n_costed | cases behind the pattern (all / with cost): the sampling weight |
| male_share | share of men; 0 or 1 when a code is sex-specific (pregnancy, genital organs), else shrunk ({K_SEX:g} pseudo-cases) towards the principal category's share |
| age_mean, age_sd, age_min, age_max | age in years; sd shrunk towards the pooled within-pattern sd ({K_SD:g} pseudo-cases) |
| age_days_mean, age_days_sd | age in days for infant patterns (age < 1) |
| birth_weight_mean, birth_weight_sd | newborn patterns only (g) |
| los_mu, los_sd | mean / sd of log(1 + LOS days); sd shrunk to the pooled {s['meta']['los_pooled_within_sd']:.3f} |
| death_share | (deaths + {K_DEATH:g} x {DEATH_PRIOR}) / (n + {K_DEATH:g}) |
| cost_mu, cost_sd | log total cost (yuan) at the pattern's mean LOS; observed where costed (sd shrunk to the pooled {s['meta']['cost_pooled_within_sd']:.3f}), else predicted by the cost model with sd = its residual sd |
| cost_observed | cost_mu is from real costs |
| department | most frequent 科室 code of the pattern (local codes of the source hospitals) |
| severity_mask | bit j set: severity code j (row j of `severity_codes.parquet`) may be added as a secondary diagnosis (not already present and not cancelled by the principal diagnosis through its CC exclusion table) |

Schema metadata `dipsim.patterns` (JSON): `los_cost_elasticity` (the LOS slope of the cost model, used to move cost
with a sampled LOS), `cost_resid_sd`, the pooled sds and the severity code order.

## Cost model (fitted on the {fit['n']} costed cases)
log(total cost) = x'beta + category effect, least squares; the principal-diagnosis category (3 characters, {fit['n_categories']}
categories) effect is the mean residual shrunk by n/(n + {K_CATEGORY_COST:g}), three backfitting rounds.

| fit | value |
|---|---|
| R^2 in sample | {fit['r2_in_sample']:.3f} |
| R^2 five-fold cross-validated | {fit['r2_cv5']:.3f} |
| R^2 of log(1+LOS) alone | {fit['r2_los_only']:.3f} |
| residual sd (log) | {fit['resid_sd']:.3f} |

| feature | beta |
|---|---|
{beta}

The uncosted cases (`{GROUPED_FILE}`, another city) get the model's prediction; their cost level is therefore
that of the costed city.

## `severity_codes.parquet` ({len(sev)} rows: {s['severity_mcc']} MCC, {s['severity_cc']} CC; sha256 `{s['severity_sha256']}`)
The {len(sev)} most frequent secondary diagnoses of the real cases (neoplasms left out) that are on the CHS-DRG 1.1
MCC list (else the CC list), with their exclusion table number, frequency and name. The upcoding behaviour adds one or two of them.
Most frequent: {top}.
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="folder with the two case CSVs")
    ap.add_argument("--lists", type=Path, default=DEFAULT_LISTS, help="CHS-DRG 1.1 lists folder (MCC/CC/CCE.dat)")
    ap.add_argument("--codes", type=Path, default=DEFAULT_CODES, help="ICD-10 医保版 2.0 code/name list")
    ap.add_argument("-o", "--out", type=Path, default=OUT_DIR)
    a = ap.parse_args(argv)
    stats = build(a.source, a.lists, a.codes, a.out)
    print(json.dumps({k: stats[k] for k in ("patterns", "patterns_kb", "cases_used", "singletons")}
                     | {"r2_in_sample": round(stats["fit"]["r2_in_sample"], 4),
                        "r2_cv5": round(stats["fit"]["r2_cv5"], 4)}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
