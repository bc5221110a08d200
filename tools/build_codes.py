"""Build grouper_tables/codes/ (code dictionaries and crosswalks) from the OpenDRG/DRG_Datas reference files.

Usage: python tools/build_codes.py [--source DIR] [--out DIR]
  --source  default <repo>/../shared/reference/codes
  --out     default <repo>/grouper_tables/codes

Re-runnable and deterministic: the CSVs, LICENSE and README.md come out byte-identical for the same sources; only
``built_on`` in manifest.toml changes. Exits non-zero on anything it cannot parse (bad line, bad code shape,
duplicate code, unknown reference), after printing every problem.

Repairs of known source defects are explicit and printed (each rule below says which file and why).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import io
import re
import shutil
import sys
from pathlib import Path

import pyarrow as pa
import tomli_w

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools"))  # tools/_common.py

from dipsim.codes import (  # noqa: E402
    ICD10_SHAPE,
    PROCEDURE_KINDS,
    is_valid_code_shape,
    normalise_codes,
)
from dipsim.io.writers import sha256_file  # noqa: E402

from _common import BuildError, run, source_dir_label, write  # noqa: E402

VERSION = "医保版 2.0"
LICENCE = "Apache-2.0 (OpenDRG/DRG_Datas)"
DEFAULT_SOURCE = REPO.parent / "shared" / "reference" / "codes"
DEFAULT_OUT = REPO / "grouper_tables" / "codes"

SRC_ICD10 = "icd10_yb_2.0.txt"
SRC_ICD10_NOT_PRINCIPAL = "icd10_yb_2.0_not_principal.txt"
SRC_ICD9 = "icd9cm3_yb_2.0.txt"
SRC_ICD9_GRAY = "icd9cm3_yb_2.0_gray.txt"
SRC_ICD9_HIERARCHY = "icd9cm3_yb_2.0_hierarchy.csv"
SRC_KIND = "procedure_kind_guolin.txt"
CROSSWALK_FILES = {
    # output file: (source file, system, description)
    "crosswalk_icd10_guolin2.0_to_yb2.0.csv": (
        "crosswalk_icd10_guolin2.0_to_yb2.0.csv", "icd10", "ICD-10 国临版 2.0 -> 医保版 2.0"),
    "crosswalk_icd10_yb1.0_to_yb2.0.csv": (
        "crosswalk_icd10_yb1.0_to_yb2.0.csv", "icd10", "ICD-10 医保版 1.0 -> 医保版 2.0"),
    "crosswalk_icd9_guolin3.0_to_yb2.0.csv": (
        "crosswalk_icd9_guolin3.0_to_yb2.0.csv", "icd9", "ICD-9-CM-3 国临版 3.0 -> 医保版 2.0"),
}
OUT_ICD10 = "icd10_yb2.0.csv"
OUT_ICD9 = "icd9cm3_yb2.0.csv"

# Source defects in the 国临版 2.0 ICD-10 crosswalk (source column only), repaired before validation:
# an ICD-O morphology code glued to the diagnosis (C22.101M81600/3 -> C22.101),
# a dagger/asterisk pair without its + (B37.600I39.8 -> B37.600+I39.8*), or without its * (K74.300x011+I98.2).
SOURCE_REPAIRS: tuple[tuple[str, str, str], ...] = (
    ("morphology code appended", r"^([A-Z][0-9]{2}\.[0-9x]{3}(?:x[0-9]{3})?)M[0-9]{5}/[0-9]$", r"\1"),
    ("dagger pair without +/*", r"^([A-Z][0-9]{2}\.[0-9x]{3}(?:x[0-9]{3})?)([A-Z][0-9]{2}(?:\.[0-9])?)$", r"\1+\2*"),
    ("asterisk code without *", r"^(.+\+[A-Z][0-9]{2}(?:\.[0-9])?)$", r"\1*"),
)


# ----------------------------------------------------------------------------------------------------------------
# Reading


def read_lines(path: Path) -> list[str]:
    text = path.read_bytes().decode("utf-8-sig")
    return [line.rstrip("\r") for line in text.split("\n") if line.strip()]


def read_code_name(path: Path, problems: list[str]) -> list[tuple[str, str]]:
    """``code name`` lines (first space separates)."""
    rows = []
    for n, line in enumerate(read_lines(path), start=1):
        code, _, name = line.strip().partition(" ")
        if not code or not name.strip():
            problems.append(f"{path.name}:{n}: cannot parse {line!r}")
            continue
        rows.append((code, name.strip()))
    return rows


def read_csv_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


# ----------------------------------------------------------------------------------------------------------------
# Validation helpers (shared with dipsim.codes so the product and the build agree on what a code looks like)


def normalise(codes: list[str], system: str) -> list[str]:
    return normalise_codes(pa.array(codes, pa.string()), system).to_pylist()


def check_codes(codes: list[str], system: str, what: str, problems: list[str], *, canonical: bool) -> None:
    """Every code has a valid shape; with ``canonical`` also normalisation leaves it unchanged."""
    arr = pa.array(codes, pa.string())
    valid = is_valid_code_shape(arr, system).to_pylist()
    bad = [c for c, ok in zip(codes, valid) if not ok]
    for c in bad[:20]:
        problems.append(f"{what}: invalid {system} code shape {c!r}")
    if len(bad) > 20:
        problems.append(f"{what}: ... {len(bad) - 20} more invalid codes")
    if canonical:
        changed = [(c, n) for c, n in zip(codes, normalise(codes, system)) if c != n]
        for c, n in changed[:20]:
            problems.append(f"{what}: normalisation changes dictionary code {c!r} -> {n!r}")


def check_unique(codes: list[str], what: str, problems: list[str]) -> None:
    seen: set[str] = set()
    dups = sorted({c for c in codes if c in seen or seen.add(c)})
    for c in dups[:20]:
        problems.append(f"{what}: duplicate code {c!r}")


# ----------------------------------------------------------------------------------------------------------------
# Builders: each returns (header, rows) sorted by code


def build_icd10(src: Path, problems: list[str], log: list[str]) -> tuple[list[str], list[list[str]]]:
    entries = read_code_name(src / SRC_ICD10, problems)
    codes = [c for c, _ in entries]
    check_codes(codes, "icd10", SRC_ICD10, problems, canonical=True)
    check_unique(codes, SRC_ICD10, problems)
    # 不能作为主要诊断 (灰码) list: one code per line; duplicates are harmless and only counted.
    not_principal = [line.strip() for line in read_lines(src / SRC_ICD10_NOT_PRINCIPAL)]
    np_set = set(not_principal)
    unknown = sorted(np_set - set(codes))
    for c in unknown:
        problems.append(f"{SRC_ICD10_NOT_PRINCIPAL}: code {c!r} is not in {SRC_ICD10}")
    log.append(f"{SRC_ICD10}: {len(entries)} codes; {SRC_ICD10_NOT_PRINCIPAL}: {len(not_principal)} lines, "
               f"{len(np_set)} distinct ({len(not_principal) - len(np_set)} duplicate lines ignored)")
    rows = [[c, name, "false" if c in np_set else "true", c[:3], c[:5]] for c, name in sorted(entries)]
    return ["code", "name", "allowed_as_principal", "category", "subcategory"], rows


def procedure_kinds(src: Path, dictionary: set[str], problems: list[str], log: list[str]) -> dict[str, tuple[str, str]]:
    """code -> (kind, kind_source) for 医保版 2.0 procedures.

    The kind list is keyed by 国临版 3.0 codes. Rule: a 医保版 code that appears in it takes its kind ("guolin");
    otherwise the kind of the 国临版 codes the crosswalk maps onto it, when they all agree ("crosswalk");
    otherwise unknown (""). Source lines without a code (a known defect: 42 lines " 治疗性操作") are skipped.
    """
    kind: dict[str, str] = {}
    blank = 0
    for n, line in enumerate(read_lines(src / SRC_KIND), start=1):
        code, _, k = line.partition(" ")
        k = k.strip()
        if not code.strip():
            blank += 1
            continue
        if k not in PROCEDURE_KINDS:
            problems.append(f"{SRC_KIND}:{n}: unknown procedure kind {k!r}")
        if kind.get(code, k) != k:
            problems.append(f"{SRC_KIND}:{n}: conflicting kinds for {code!r}")
        kind[code] = k
    check_codes(sorted(kind), "icd9", SRC_KIND, problems, canonical=True)
    via: dict[str, set[str]] = {}
    _, cw_rows = read_csv_rows(src / CROSSWALK_FILES["crosswalk_icd9_guolin3.0_to_yb2.0.csv"][0])
    for r in cw_rows:
        if r[0].strip() in kind:
            via.setdefault(r[2].strip(), set()).add(kind[r[0].strip()])
    out: dict[str, tuple[str, str]] = {}
    conflicts = []
    for code in dictionary:
        if code in kind:
            out[code] = (kind[code], "guolin")
        elif len(via.get(code, ())) == 1:
            out[code] = (next(iter(via[code])), "crosswalk")
        else:
            conflicts += [code] if len(via.get(code, ())) > 1 else []
            out[code] = ("", "")
    counts = {s: sum(1 for v in out.values() if v[1] == s) for s in ("guolin", "crosswalk", "")}
    log.append(f"{SRC_KIND}: {len(kind)} codes ({blank} lines without a code skipped); procedure kind for "
               f"{len(dictionary)} 医保版 codes: {counts['guolin']} direct, {counts['crosswalk']} via the 国临版 3.0 "
               f"crosswalk, {counts['']} unknown (of which {len(conflicts)} with conflicting kinds: "
               f"{', '.join(sorted(conflicts)) or '-'})")
    return out


def read_hierarchy(src: Path, dictionary: set[str], problems: list[str], log: list[str]) -> dict[str, list[str]]:
    """code -> [chapter, chapter_name, category, category_name, subcategory, detail] from the 章/类目/亚目/细目 tree."""
    header, rows = read_csv_rows(src / SRC_ICD9_HIERARCHY)
    if header[:10] != ["章", "章的名称", "类目代码", "类目名称", "亚目代码", "亚目名称", "细目代码", "细目名称",
                       "手术操作代码", "手术操作名称"]:
        problems.append(f"{SRC_ICD9_HIERARCHY}: unexpected header {header}")
        return {}
    out: dict[str, list[str]] = {}
    empty = 0
    for n, r in enumerate(rows, start=2):
        r = [x.strip() for x in r]
        if not r[8]:  # a 细目 row without any procedure code under it (99.92 其他针刺)
            empty += 1
            continue
        if r[8] in out:
            problems.append(f"{SRC_ICD9_HIERARCHY}:{n}: duplicate code {r[8]!r}")
        if not r[0].isdigit() or not r[2] or not r[4]:
            problems.append(f"{SRC_ICD9_HIERARCHY}:{n}: cannot parse {r}")
        elif r[2] != r[8][:2] or r[4] != r[8][:4]:
            # Kept as the source places it (39.9500x004 血浆置换 sits under 99.71 治疗性血浆去除术).
            log.append(f"  {SRC_ICD9_HIERARCHY}:{n}: {r[8]} filed under {r[4]}/{r[6]} (kept as listed)")
        out[r[8]] = [r[0], r[1], r[2], r[3], r[4], r[6]]
    missing = sorted(dictionary - set(out))
    extra = sorted(set(out) - dictionary)
    for c in missing[:20]:
        problems.append(f"{SRC_ICD9_HIERARCHY}: dictionary code {c!r} missing")
    for c in extra[:20]:
        problems.append(f"{SRC_ICD9_HIERARCHY}: code {c!r} not in {SRC_ICD9}")
    log.append(f"{SRC_ICD9_HIERARCHY}: {len(out)} codes ({empty} rows without a code skipped; names taken from "
               f"{SRC_ICD9}, where the hierarchy has '??' for rare characters)")
    return out


def build_icd9(src: Path, problems: list[str], log: list[str]) -> tuple[list[str], list[list[str]]]:
    entries = read_code_name(src / SRC_ICD9, problems)
    codes = [c for c, _ in entries]
    check_codes(codes, "icd9", SRC_ICD9, problems, canonical=True)
    check_unique(codes, SRC_ICD9, problems)
    dictionary = set(codes)
    gray = [line.strip() for line in read_lines(src / SRC_ICD9_GRAY)]
    for c in sorted(set(gray) - dictionary):
        problems.append(f"{SRC_ICD9_GRAY}: code {c!r} is not in {SRC_ICD9}")
    gray_set = set(gray)
    log.append(f"{SRC_ICD9}: {len(entries)} codes; {SRC_ICD9_GRAY}: {len(gray)} lines, {len(gray_set)} distinct")
    kinds = procedure_kinds(src, dictionary, problems, log)
    tree = read_hierarchy(src, dictionary, problems, log)
    header = ["code", "name", "kind", "kind_source", "gray", "chapter", "chapter_name", "category", "category_name",
              "subcategory", "detail"]
    rows = [[c, name, *kinds[c], "true" if c in gray_set else "false", *tree.get(c, [""] * 6)]
            for c, name in sorted(entries)]
    return header, rows


_ICD10_RE = re.compile(ICD10_SHAPE)
_REPAIRS = tuple((what, re.compile(pattern), rewrite) for what, pattern, rewrite in SOURCE_REPAIRS)


def repair_source(code: str) -> tuple[str, str]:
    """Apply the first SOURCE_REPAIRS rule that changes an invalid-shaped ICD-10 code; returns (code, rule)."""
    if _ICD10_RE.match(code):
        return code, ""
    for what, pattern, rewrite in _REPAIRS:
        fixed = pattern.sub(rewrite, code)
        if fixed != code:
            return fixed, what
    return code, ""


def build_crosswalk(src: Path, file: str, system: str, targets: set[str], problems: list[str], log: list[str]
                    ) -> tuple[list[str], list[list[str]]]:
    """Cleaned crosswalk: 4 columns, whitespace stripped, sources normalised and unique.

    Rules: trailing empty columns are dropped (a non-empty one is reported and ignored); rows without a source code
    are codes new in 2.0 with no predecessor and are dropped; a source listed several times keeps its first row
    (reported). Targets not in the 2.0 dictionary are kept and reported.
    """
    header, rows = read_csv_rows(src / file)
    if len(header) < 4:
        raise BuildError(f"{file}: expected at least 4 columns, got {header}")
    notes: list[str] = []
    cleaned: list[list[str]] = []
    no_source = 0
    for n, r in enumerate(rows, start=2):
        if len(r) < 4:
            problems.append(f"{file}:{n}: fewer than 4 columns: {r}")
            continue
        if any(x.strip() for x in r[4:]):
            notes.append(f"line {n}: extra column(s) ignored: {[x for x in r[4:] if x.strip()]}")
        s_code, s_name, t_code, t_name = (x.strip() for x in r[:4])
        if not s_code:
            no_source += 1
            continue
        if not t_code:
            problems.append(f"{file}:{n}: blank target for {s_code!r}")
            continue
        if system == "icd10":
            fixed, what = repair_source(s_code)
            if what:
                notes.append(f"line {n}: source {s_code!r} -> {fixed!r} ({what})")
                s_code = fixed
        cleaned.append([s_code, s_name, t_code, t_name])
    if not cleaned:
        raise BuildError(f"{file}: no rows")
    # Normalise (whitespace, case); the dictionary form is already canonical, so this only fixes stray spaces.
    for col in (0, 2):
        for row, code in zip(cleaned, normalise([row[col] for row in cleaned], system)):
            row[col] = code
    check_codes([r[0] for r in cleaned], system, f"{file} source", problems, canonical=False)
    check_codes([r[2] for r in cleaned], system, f"{file} target", problems, canonical=False)
    first: dict[str, list[str]] = {}
    multi: dict[str, set[str]] = {}
    for r in cleaned:
        if r[0] in first:
            multi.setdefault(r[0], {first[r[0]][2]}).add(r[2])
        else:
            first[r[0]] = r
    out = sorted(first.values())
    one_to_many = sum(1 for v in multi.values() if len(v) > 1)
    missing_targets = sorted({r[2] for r in out} - targets)
    fan_in: dict[str, int] = {}
    for r in out:
        fan_in[r[2]] = fan_in.get(r[2], 0) + 1
    log.append(
        f"{file}: {len(rows)} rows -> {len(out)} mappings ({sum(r[0] != r[2] for r in out)} change the code); "
        f"{no_source} rows without a source code dropped (new in 2.0); {len(cleaned) - len(out)} repeated sources "
        f"({one_to_many} mapping to several targets: first listed kept); "
        f"{sum(1 for v in fan_in.values() if v > 1)} targets reached from several sources (many-to-one, kept); "
        f"{len(missing_targets)} targets not in the 2.0 dictionary (kept: {', '.join(missing_targets) or '-'}); "
        f"{sum(1 for r in out if r[0] in targets and r[0] != r[2])} sources that are also 2.0 codes but map elsewhere")
    log.extend(f"  {file} {note}" for note in notes)
    return ["source_code", "source_name", "target_code", "target_name"], out


# ----------------------------------------------------------------------------------------------------------------
# Writing


def csv_bytes(header: list[str], rows: list[list[str]]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue().encode("utf-8")


README = """\
# Code dictionaries (医保版 2.0)

Generated by `tools/build_codes.py` from `../shared/reference/codes` (OpenDRG/DRG_Datas, Apache-2.0, see LICENSE).
Do not edit by hand: rebuild with

    python tools/build_codes.py [--source DIR] [--out DIR]

`manifest.toml` records the sha256 of every source file and the row count and sha256 of every output. All files are
UTF-8 CSV with a header row, sorted by the first column; booleans are `true`/`false`.

| file | content |
|---|---|
| `icd10_yb2.0.csv` | ICD-10 医保版 2.0 diagnoses: `code,name,allowed_as_principal,category,subcategory`. `allowed_as_principal` is false for the 不能作为主要诊断 list (灰码); `category` = first 3 characters (K35), `subcategory` = first 5 (K35.8). |
| `icd9cm3_yb2.0.csv` | ICD-9-CM-3 医保版 2.0 procedures: `code,name,kind,kind_source,gray,chapter,chapter_name,category,category_name,subcategory,detail`. `kind` is 手术 / 介入治疗 / 治疗性操作 / 诊断性操作 or empty where unknown; `kind_source` says where it came from (`guolin`: the 国临版 3.0 kind list has the same code; `crosswalk`: the 国临版 3.0 codes mapped onto this code agree on one kind). `gray` marks the procedure 灰码 list. Chapter (章), category (类目), subcategory (亚目) and detail (细目, empty for x-codes) come from the hierarchy file. |
| `crosswalk_icd10_guolin2.0_to_yb2.0.csv` | ICD-10 国临版 2.0 -> 医保版 2.0 |
| `crosswalk_icd10_yb1.0_to_yb2.0.csv` | ICD-10 医保版 1.0 -> 医保版 2.0 |
| `crosswalk_icd9_guolin3.0_to_yb2.0.csv` | ICD-9-CM-3 国临版 3.0 -> 医保版 2.0 |

Crosswalks have columns `source_code,source_name,target_code,target_name`, one row per source code (identity rows
included). Cleaning rules: trailing empty columns dropped; whitespace stripped; rows without a source code (codes new
in 2.0) dropped; a source listed more than once keeps its first row (none in the current sources); in the 国临版 2.0
ICD-10 file, source codes with an ICD-O morphology code glued on (`C22.101M81600/3`) lose it and dagger/asterisk
pairs missing `+` or `*` get them. The build prints every repair. Crosswalks are applied only on request
(`dipsim.codes.apply_crosswalk`).
"""


def build(src: Path, out: Path) -> list[str]:
    """Build all tables; returns the log lines. Raises BuildError listing every problem found."""
    if not src.is_dir():
        raise BuildError(f"source folder not found: {src}")
    problems: list[str] = []
    log: list[str] = []
    tables: dict[str, tuple[list[str], list[list[str]]]] = {}
    tables[OUT_ICD10] = build_icd10(src, problems, log)
    tables[OUT_ICD9] = build_icd9(src, problems, log)
    dict_codes = {"icd10": {r[0] for r in tables[OUT_ICD10][1]}, "icd9": {r[0] for r in tables[OUT_ICD9][1]}}
    for out_file, (src_file, system, _) in CROSSWALK_FILES.items():
        tables[out_file] = build_crosswalk(src, src_file, system, dict_codes[system], problems, log)
    if problems:
        raise BuildError("\n".join(problems))

    outputs = []
    for name, (header, rows) in tables.items():
        data = csv_bytes(header, rows)
        write(out / name, data)
        outputs.append({"file": name, "rows": len(rows), "sha256": hashlib.sha256(data).hexdigest()})
        log.append(f"wrote {name}: {len(rows)} rows")
    shutil.copyfile(src / "LICENSE", out / "LICENSE")
    write(out / "README.md", README.encode("utf-8"))
    used = [SRC_ICD10, SRC_ICD10_NOT_PRINCIPAL, SRC_ICD9, SRC_ICD9_GRAY, SRC_ICD9_HIERARCHY, SRC_KIND,
            *(v[0] for v in CROSSWALK_FILES.values()), "LICENSE"]
    manifest = {
        "version": VERSION,
        "built_by": "tools/build_codes.py",
        "built_on": dt.date.today().isoformat(),
        "licence": LICENCE,
        "source_dir": source_dir_label(src),
        "sources": [{"file": f, "sha256": sha256_file(src / f)} for f in used],
        "outputs": outputs,
    }
    write(out / "manifest.toml", tomli_w.dumps(manifest).encode("utf-8"))
    log.append(f"wrote LICENSE, README.md, manifest.toml to {out}")
    return log


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help=f"default: {DEFAULT_SOURCE}")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default: {DEFAULT_OUT}")
    args = parser.parse_args(argv)
    return run("build_codes", lambda: build(args.source, args.out))


if __name__ == "__main__":
    sys.exit(main())
