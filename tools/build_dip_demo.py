"""Build the two demo DIP catalogues committed in grouper_tables/ (issue 4):

    python tools/build_dip_demo.py [--source ../shared/reference/cases/costed_cases.csv]

* grouper_tables/dip-demo-costed/: from the 13,239 real cases with costs of costed_cases.csv (one city, one period,
  no discharge dates), threshold 15 (the default, docs/domain.md §6);
* grouper_tables/dip-demo-synthetic/: from a synthetic region (`dipsim synth`, 200,000 cases, seed 20250101),
  threshold 15, with the example TCM catalogue examples/dip_tcm.toml.

Each folder holds catalog.parquet / catalog.csv, keys.parquet, coverage.md and manifest.json (inputs named by path
relative to the repository's parent, with sha256). Only `built_on` in the manifest changes on a rerun.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tools/_common.py

from dipsim.catalog import CatalogOptions, build_catalog, write_catalog
from dipsim.io import load_cases
from dipsim.io.writers import sha256_file
from dipsim.synth import synthesize_region
from dipsim.tcm import load_tcm

from _common import REPO, BuildError, run, source_dir_label

SYNTH_CASES, SYNTH_SEED = 200_000, 20250101


def _input(path: Path, result, label: str) -> dict:
    return {"path": label, "rows_read": result.rows_read, "accepted": result.n_accepted,
            "rejected": result.n_rejected, "sha256": sha256_file(path) if path.is_file() else None}


def build(source: Path) -> list[str]:
    log = []
    if not source.is_file():
        raise BuildError(f"{source}: not found (use --source)")
    result = load_cases(source)
    catalog = build_catalog(result.accepted, CatalogOptions())
    out = write_catalog(catalog, REPO / "grouper_tables" / "dip-demo-costed",
                        [_input(source, result, source_dir_label(source))])
    log.append(f"{out.name}: {catalog.cases:,} cases -> coverage {catalog.coverage:.2%} at threshold "
               f"{catalog.threshold}, {catalog.groups.num_rows:,} groups")

    with tempfile.TemporaryDirectory() as tmp:
        region = synthesize_region(Path(tmp) / "region", cases=SYNTH_CASES, hospitals=100, seed=SYNTH_SEED)
        result = load_cases(region.out_dir / "cases")
        tcm_file = REPO / "examples" / "dip_tcm.toml"
        catalog = build_catalog(result.accepted, CatalogOptions(tcm=load_tcm(tcm_file)))
        label = f"dipsim synth --cases {SYNTH_CASES} --seed {SYNTH_SEED} (cases/, {region.cases:,} rows)"
        out = write_catalog(catalog, REPO / "grouper_tables" / "dip-demo-synthetic",
                            [{"path": label, "rows_read": result.rows_read, "accepted": result.n_accepted,
                              "rejected": result.n_rejected, "tcm_catalogue": "examples/dip_tcm.toml",
                              "tcm_sha256": sha256_file(tcm_file)}])
    log.append(f"{out.name}: {catalog.cases:,} cases -> coverage {catalog.coverage:.2%} at threshold "
               f"{catalog.threshold}, {catalog.groups.num_rows:,} groups")
    return log


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path,
                        default=REPO.parent / "shared" / "reference" / "cases" / "costed_cases.csv")
    args = parser.parse_args()
    return run("build_dip_demo", lambda: build(args.source))


if __name__ == "__main__":
    sys.exit(main())
