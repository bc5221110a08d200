"""`dipsim` command line: parse, call, print. Exit codes (DESIGN.md): 0 ok, 1 bad input or policy or a file/disk
fault, 2 usage, 3 internal error (a bug only), 4 nightly lock held."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import traceback
from pathlib import Path

from rich.console import Console

# Arrow's buffers from its jemalloc pool unless ARROW_DEFAULT_MEMORY_POOL names one; set before pyarrow is imported
# (it reads the variable when it makes its default pool), and inherited by worker processes (nightly, Dask). With
# the default mimalloc pool, `dipsim group` of 1M cases from Parquet and `dipsim settle` spent about twice the system
# time (pages given back and faulted in again) and were slower in most paired runs, at a higher peak RSS, on a
# 2-core VM (benchmarks/RESULTS.md, issue 17).
if sys.platform.startswith("linux") and not os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):  # wheels carry jemalloc
    os.environ["ARROW_DEFAULT_MEMORY_POOL"] = "jemalloc"

from dipsim import __version__
from dipsim.io.errors import DipsimError, InputError, printable

EXIT_OK, EXIT_INPUT, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
GROUP_BATCH_ROWS = 1 << 18  # `dipsim group` reads, validates and groups a large Parquet file this many rows at a time
SCREEN_BATCH_ROWS = 1 << 18  # `dipsim screen`: rows of a large Parquet file or a `dipsim validate` output at a time


class _Console(Console):
    """The commands' console on stderr: text passes through `printable`, so that a user value (a reason quoting a
    garbage cell, a hospital id) cannot send control sequences to the terminal; rich's own styling is unaffected."""

    def print(self, *objects, **kwargs) -> None:
        super().print(*(printable(o) if isinstance(o, str) else o for o in objects), **kwargs)


class _PrintableStream:
    """sys.stdout while a command runs: the result lines (pool ids, explain's case text ...) pass through
    `printable` too."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(printable(text))
        return len(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _console(args) -> _Console:
    return _Console(stderr=True, quiet=getattr(args, "quiet", False), highlight=False)


@contextlib.contextmanager
def _progress(console: Console, description: str, total: int):
    """A progress bar on stderr (hidden with --quiet or when stderr is not a terminal); yields update(done, total)."""
    if console.quiet or not console.is_terminal:  # nothing to show: rich.progress is not even imported
        yield lambda done, total: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda done, total: bar.update(task, completed=done, total=total)


# ---------------------------------------------------------------- validate


def _add_read_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mapping", metavar="FILE",
                        help="header mapping TOML ([columns] \"their header\" = \"canonical\")")
    parser.add_argument("--encoding", help="force the text encoding of a CSV (default: detect UTF-8/UTF-8-BOM/GB18030)")
    parser.add_argument("--sheet", help="Excel sheet name or 0-based index (default: the first sheet)")
    parser.add_argument("--missing-principal", choices=["warn", "reject"], default="warn",
                        help="a case with no principal diagnosis: keep it as ungroupable (warn, default) or reject it")
    parser.add_argument("--dx-crosswalk", choices=["icd10_guolin2.0", "icd10_yb1.0"],
                        help="translate diagnosis codes from 国临版 2.0 or 医保版 1.0 to 医保版 2.0")
    parser.add_argument("--px-crosswalk", choices=["icd9_guolin3.0"],
                        help="translate procedure codes from 国临版 3.0 to 医保版 2.0")


def _add_qy_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--qy", choices=["on", "off"],
                        help="xQY groups (与主要诊断无关的手术) on or off; default: the scheme's [qy] enabled "
                             "(off for the national 1.1 list, which has no QY groups)")


def _read_options(args):
    from dipsim.io.headers import load_header_mapping
    from dipsim.io.validate import ValidationOptions

    mapping = load_header_mapping(args.mapping) if args.mapping else None
    options = ValidationOptions(missing_principal=args.missing_principal,
                                diagnosis_crosswalk=args.dx_crosswalk, procedure_crosswalk=args.px_crosswalk)
    sheet = int(args.sheet) if args.sheet and args.sheet.isdigit() else args.sheet
    return mapping, options, sheet


def _load(args, console: Console, path, **kwargs):
    """Read and validate `path` with the read options (--mapping, --encoding, --sheet, ...), with progress."""
    from dipsim.io.validate import load_cases

    mapping, options, sheet = _read_options(args)
    with _progress(console, "reading and validating", 1) as update:
        result = load_cases(path, options=options, header_mapping=mapping, encoding=args.encoding, sheet=sheet,
                            **kwargs)
        update(1, 1)
    return result


def _file_digests(*paths) -> list[dict]:
    """`io.writers.file_digests` (imported when a command writes its manifest)."""
    from dipsim.io.writers import file_digests

    return file_digests(*paths)


def cmd_validate(args) -> int:
    from dipsim.io.pipeline import validate_to_dir

    console = _console(args)
    mapping, options, sheet = _read_options(args)
    with _progress(console, "validating", 1) as update:
        summary = validate_to_dir(args.input, args.out, options=options, header_mapping=mapping,
                                  encoding=args.encoding, sheet=sheet, progress=update)
    print(summary.counts_line())
    _print_reasons(console, "rejected", summary.reject_reasons)
    _print_reasons(console, "warnings", summary.warning_reasons)
    console.print(f"accepted cases -> {summary.accepted_path}\nrejects -> {summary.rejects_path}\n"
                  f"warnings -> {summary.warnings_path}")
    return EXIT_OK


def _print_reasons(console: Console, title: str, reasons: dict[str, int], top: int = 10) -> None:
    """The most frequent problems, so that a user sees at once what to fix (the CSV has every row)."""
    if not reasons:
        return
    console.print(f"{title} by field and reason (problem lines):")
    for text, count in list(reasons.items())[:top]:
        console.print(f"  {count:>9,}  {printable(text)}", markup=False)
    if len(reasons) > top:
        console.print(f"  … {len(reasons) - top} more kinds in the CSV")


# ---------------------------------------------------------------- group / explain


def cmd_group(args) -> int:
    """Validate the input, group every accepted case, write OUT (csv or parquet) and the rejects beside it."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from dipsim.grouping.drg import GROUPING_INPUT_COLUMNS, group_table, warm_up
    from dipsim.io.readers import read_ahead
    from dipsim.io.validate import counts_line, duplicate_rows, iter_cases
    from dipsim.io.writers import table_parts, write_csv

    console = _console(args)
    out = Path(args.out)
    if out.suffix.lower() not in (".csv", ".parquet"):
        raise InputError(f"{out}: the output must end in .csv or .parquet")
    if args.scheme == "dip":
        return _group_dip(args, console, out)
    if args.scheme == "auto" or args.compare_schemes:
        return _group_versions(args, console, out)
    scheme = _scheme(args, compiled=True)
    warm_up(scheme)  # the kernel loads while the input is read
    mapping, options, sheet = _read_options(args)
    # the next piece is read and validated in a thread of its own while this one is grouped (both mostly Arrow
    # and Numba work that lets go of the GIL: the two cores share it)
    pieces = read_ahead(iter_cases(args.input, GROUP_BATCH_ROWS, options, mapping, args.encoding, sheet,
                                   columns=list(GROUPING_INPUT_COLUMNS), dictionary_codes=True))
    rejects, rows_read, accepted, rejected, repeats, ungroupable = [], 0, 0, 0, 0, 0
    with _progress(console, f"reading, validating and grouping ({args.scheme})", None) as update, \
            table_parts(out) as write:
        for result in pieces:  # a piece at a time, written as grouped: memory bounded by the piece, not the input
            grouped = group_table(result.accepted, scheme=scheme)
            write(grouped)
            ungroupable += pc.sum(pc.starts_with(grouped["drg"], "0000")).as_py() or 0
            rejects.append(result.rejects)
            rows_read, accepted, rejected = (rows_read + result.rows_read, accepted + result.n_accepted,
                                             rejected + result.n_rejected)
            repeats += duplicate_rows(result.rejects)
            update(accepted + rejected, None)
    rejects_path = out.with_name(out.stem + ".rejects.csv")
    write_csv(pa.concat_tables(rejects), rejects_path)
    print(f"{counts_line(rows_read, accepted, rejected, {'duplicate case ids': repeats})}; grouped "
          f"{accepted - ungroupable:,}, ungroupable (0000) {ungroupable:,} -> {out}")
    if rejected:
        console.print(f"rejected rows are not grouped; see {rejects_path}")
    return EXIT_OK


def _group_versions(args, console, out: Path) -> int:
    """`--scheme auto`: each case under the CHS-DRG version in force on its discharge date (OUT gets a `scheme`
    column); `--compare-schemes A,B`: every case under both, OUT with case_id, from_drg, to_drg and the transition
    table beside it (OUT.transition.csv: from_drg, to_drg, cases, share_of_from)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from dipsim.grouping.drg import group_table
    from dipsim.grouping.versions import NO_DATE_REASON, group_by_date, load_scheme_dates, transition
    from dipsim.io.writers import write_csv, write_table

    result = _load(args, console, args.input)
    cases = result.accepted
    counts = result.counts_line()
    if args.compare_schemes:
        names = [n.strip() for n in args.compare_schemes.split(",") if n.strip()]
        if len(names) != 2:
            raise InputError("--compare-schemes takes two versions, e.g. chs-drg-1.1,chs-drg-2.0")
        with _progress(console, f"grouping under {names[0]} and {names[1]}", 2) as update:
            first = group_table(cases, _scheme(args, compiled=True, name=names[0]))
            update(1, 2)
            second = group_table(cases, _scheme(args, compiled=True, name=names[1]))
            update(2, 2)
        write_table(pa.table({"case_id": first["case_id"], "from_drg": first["drg"], "to_drg": second["drg"]}), out)
        moves = transition(first, second)
        write_csv(pa.Table.from_pandas(moves, preserve_index=False), out.with_name(out.stem + ".transition.csv"))
        same = pc.sum(pc.equal(first["drg"], second["drg"])).as_py() or 0
        print(f"{counts}; the same DRG code under both: {same:,} ({same / max(cases.num_rows, 1):.1%}); "
              f"{len(moves):,} distinct transitions -> {out}, {out.stem}.transition.csv")
    else:
        dates = load_scheme_dates(args.scheme_dates)
        compiled = {name: _scheme(args, compiled=True, name=name) for _, name in dates}
        with _progress(console, "grouping by discharge date", 1) as update:
            try:
                groups = group_by_date(cases, dates, compiled)
            except InputError as exc:
                raise InputError(f"{args.input}: {exc}") from exc
            update(1, 1)
        write_table(groups, out)
        used = {v["values"]: v["counts"] for v in pc.value_counts(groups["scheme"]).to_pylist()}
        undated = groups["scheme"].null_count
        print(f"{counts}; " + ", ".join(f"{name} {used.get(name, 0):,}" for _, name in dates)
              + (f", no discharge date (0000) {undated:,}" if undated else "") + f" -> {out}")
        if undated:
            console.print(f"warning: {undated:,} cases have no discharge date (出院日期), so --scheme auto cannot "
                          f"pick their CHS-DRG version: not grouped (drg 0000, reason \"{NO_DATE_REASON}\")")
    rejects = out.with_name(out.stem + ".rejects.csv")
    write_csv(result.rejects, rejects)
    return EXIT_OK


def _group_dip(args, console, out: Path) -> int:
    """`dipsim group --scheme dip --catalog CAT`: OUT has case_id, dip_group, dip_points, match and reason."""
    import pyarrow.compute as pc

    from dipsim.grouping.dip import group_dip_table
    from dipsim.io.writers import write_csv, write_table

    catalog = _catalog(args)
    result = _load(args, console, args.input)
    with _progress(console, f"grouping (DIP, {catalog.source})", 1) as update:
        groups = group_dip_table(result.accepted, catalog)
        update(1, 1)
    write_table(groups, out)
    rejects = out.with_name(out.stem + ".rejects.csv")
    write_csv(result.rejects, rejects)
    counts = {v["values"]: v["counts"] for v in pc.value_counts(groups["match"]).to_pylist()}
    print(f"{result.counts_line()}; "
          + ", ".join(f"{name} {counts.get(name, 0):,}" for name in ("exact", "best", "comprehensive", "tcm", "none"))
          + f" -> {out}")
    if result.n_rejected:
        console.print(f"rejected rows are not grouped; see {rejects}")
    return EXIT_OK


def _catalog(args):
    from dipsim.grouping.dip import load_catalog

    if not args.catalog:
        raise InputError("--scheme dip needs --catalog CATALOG (a folder from `dipsim catalog build`)")
    return load_catalog(args.catalog)


def _scheme(args, compiled: bool = False, name: str | None = None):
    """The grouper tables of --scheme (or `name`), with the xQY rule switched by --qy when given: the `DrgScheme`
    (explain reads its rules), or with `compiled` the kernel's arrays from the disk cache."""
    from dipsim.grouping.scheme_cache import load_compiled
    from dipsim.grouping.tables import load_scheme

    qy = None if args.qy is None else args.qy == "on"
    try:
        scheme = (load_compiled if compiled else load_scheme)(name or args.scheme, qy=qy)
    except FileNotFoundError as exc:
        raise InputError(str(exc)) from exc
    return scheme


def cmd_explain(args) -> int:
    from dipsim.grouping.explain import explain_case, find_case

    mapping, _, sheet = _read_options(args)
    if args.hospital:
        from dipsim.payment.explain import explain_hospital

        print(explain_hospital(args.input, args.hospital))
        return EXIT_OK
    if args.case_id:
        from dipsim.payment.explain import explain_case as explain_payment
        from dipsim.payment.explain import is_settle_folder

        if is_settle_folder(args.input):  # a `dipsim settle` output: the case's payment chain, not its grouping
            print(explain_payment(args.input, args.case_id))
            return EXIT_OK
    if not args.case_id:
        raise InputError("explain needs --case-id ID (a case) or --hospital H (with a `dipsim settle` folder)")
    row = find_case(args.input, args.case_id, header_mapping=mapping, encoding=args.encoding, sheet=sheet)
    if args.scheme == "dip":
        from dipsim.grouping.dip import explain_dip

        print(explain_dip(row, _catalog(args)))
        return EXIT_OK
    _, text = explain_case(row, _scheme(args))
    print(text)
    return EXIT_OK


# ---------------------------------------------------------------- catalog


def cmd_catalog_build(args) -> int:
    import pyarrow as pa

    from dipsim.catalog import CatalogOptions, build_catalog, write_catalog
    from dipsim.io.validate import load_cases
    from dipsim.tcm import load_tcm

    console = _console(args)
    tcm = load_tcm(args.tcm) if args.tcm else None
    try:
        options = CatalogOptions(threshold=args.threshold, coverage=args.coverage, trim_percentiles=args.trim,
                                 year_weights=args.year_weights, scale=args.scale,
                                 reference_group=args.reference_group, procedure_kinds=args.procedure_kinds,
                                 min_procedure_share=args.min_procedure_share, tcm=tcm)
    except (ValueError, TypeError) as exc:
        raise InputError(f"catalog options: {exc}") from exc
    mapping, read_options, sheet = _read_options(args)
    tables, inputs = [], []
    with _progress(console, "reading and validating", len(args.input)) as update:
        for number, path in enumerate(args.input):
            result = load_cases(path, options=read_options, header_mapping=mapping, encoding=args.encoding,
                                sheet=sheet)
            if args.cost_column not in result.accepted.column_names:
                raise InputError(f"{path}: no cost column {args.cost_column!r} (see --cost-column)")
            tables.append(result.accepted)
            inputs.append({"path": str(path), "rows_read": result.rows_read, "accepted": result.n_accepted,
                           "rejected": result.n_rejected, "files": _file_digests(path)})
            update(number + 1, len(args.input))
    cases = pa.concat_tables(tables, promote_options="permissive")
    try:
        catalog = build_catalog(cases, options, cost_column=args.cost_column)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    out = write_catalog(catalog, args.out, inputs)
    kinds = catalog.summary()["groups"]
    print(f"{catalog.cases:,} cases ({catalog.cases_skipped:,} skipped) -> {kinds.get('core', 0):,} core groups "
          f"(threshold {catalog.threshold}, coverage {catalog.coverage:.2%}) + {kinds.get('comprehensive', 0):,} "
          f"comprehensive" + (f" + {kinds.get('tcm', 0):,} TCM" if tcm else "") + f" groups -> {out}")
    return EXIT_OK


# ---------------------------------------------------------------- settle


def _policy_with_overrides(args):
    """The policy (--policy) with each --set PATH=VALUE and --budget POOL=YUAN applied, every problem of them and of
    the policy they make reported at once."""
    import tomllib

    from dipsim.policy import PolicyError, load_policy

    policy = load_policy(args.policy)
    changes, problems = {}, []
    for item in args.set:
        path, _, text = item.partition("=")
        try:
            changes[path.strip()] = tomllib.loads(f"v = {text.strip()}")["v"]
        except tomllib.TOMLDecodeError as exc:
            problems.append(f"--set {item}: the value is not TOML ({exc})")
    budgets, budget_problems = _parse_budgets(args)
    problems += budget_problems
    if budgets:
        changes["budget.total"] = {**policy.get("budget.total"), **budgets}
    try:
        policy = policy.overlay(changes, name=policy.name) if changes else policy
    except PolicyError as exc:
        problems += exc.problems
    if problems:
        raise PolicyError(f"{args.policy} with --set / --budget", problems)
    return policy


def _parse_budgets(args) -> tuple[dict[str, float], list[str]]:
    """Each --budget POOL=YUAN, every pool once: (budgets, problems). The amounts are checked where every budget is,
    as `budget.total` in the policy registry (finite, above 0)."""
    budgets, problems = {}, []
    for item in args.budget:
        pool, sep, amount = (part.strip() for part in item.partition("="))
        try:
            value = float(amount.replace(",", "")) if sep and pool else None
        except ValueError:
            value = None
        if value is None:
            problems.append(f"--budget {item}: expected POOL=YUAN, e.g. 990100-employee=123456789.00")
        elif pool in budgets:
            problems.append(f"--budget {pool} is given twice ({budgets[pool]:,.2f} and {value:,.2f}): give each pool "
                            "once")
        else:
            budgets[pool] = value
    return budgets, problems


def _budgets(args, policy) -> dict[str, float]:
    """The policy's budgets with each --budget POOL=YUAN applied, checked as the policy's own (InputError listing
    every bad --budget, PolicyError for an amount that is not finite and above 0)."""
    given, problems = _parse_budgets(args)
    if problems:
        raise InputError("; ".join(problems))
    budgets = {**policy.get("budget.total"), **given}
    policy.overlay({"budget.total": budgets})  # the registry's bounds, before any case is read
    return budgets


def _region(args, console: Console, mode: str, path):
    """The validated cases at `path` and the hospitals table (--hospitals) of a settlement or scenario run
    (`region.Region.of`): a DIP policy needs --catalog and the table is checked before the cases are read."""
    from dipsim.region import Region, load_hospitals

    if mode == "dip" and not args.catalog:
        raise InputError("payment.mode = dip needs --catalog CATALOG")
    hospitals = load_hospitals(args.hospitals)
    # code lists as list<dictionary<string>>: each distinct code checked and grouped once (what `dipsim group`
    # reads too); the outputs hold no code list, so they are the same either way (tested)
    region = Region.of(_load(args, console, path, dictionary_codes=True), hospitals, str(path))
    _print_reasons(console, "rejected at settlement", region.reasons())
    return region


def _check_region(args, region, policies, on=None, day=None) -> None:
    """`Region.problems` before grouping (exit 1 listing them); a budget.total pool the cases lack is a warning."""
    from dipsim.region import unused_budgets

    problems = region.problems(policies, _parse_budgets(args)[0], on, day)
    if problems:
        raise InputError(f"{args.hospitals} and the cases: {len(problems)} problem(s):\n  " + "\n  ".join(problems))
    unused = unused_budgets(region.pools(), policies[0][1], day)
    if unused:  # a warning: shown with --quiet too
        _console(argparse.Namespace(quiet=False)).print(
            f"warning: budget.total has pool(s) {', '.join(unused)} that the cases do not have (pools of the cases: "
            f"{', '.join(region.pools())})", markup=False, soft_wrap=True)


def _grouped(args, cases, mode: str, scheme: str):
    """The cases grouped for payment: to the DIP catalogue (--catalog) or under the CHS-DRG `scheme` (the policy's
    payment.drg_scheme, else --scheme), its weights calibrated on the cases' costs."""
    from dipsim.grouping.grouped_cases import group_dip, group_drg

    if mode == "dip":
        from dipsim.grouping.dip import load_catalog

        return group_dip(cases, load_catalog(args.catalog))
    return group_drg(cases, scheme)


class _InThread:
    """`fn(*args)` run in a daemon thread (a run stopped by an error elsewhere does not wait for it); `result()`
    waits and gives its value, or raises its exception."""

    def __init__(self, fn, *args):
        import threading

        self._value, self._error = None, None

        def run() -> None:
            try:
                self._value = fn(*args)
            except BaseException as exc:  # raised in the caller's thread by result()
                self._error = exc

        self._thread = threading.Thread(target=run, name=f"dipsim-{fn.__name__}", daemon=True)
        self._thread.start()

    def result(self):
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value


def _no_collection_at_exit() -> None:
    """At interpreter exit, skip the final garbage collections (`gc.freeze`): once Numba's kernels are loaded they
    walk every object Numba and LLVM made, 0.5-0.7 s of wall time on a 2-core machine, to free memory the process
    is about to give back whole. The outputs are written and closed before, and atexit handlers still run."""
    import atexit
    import gc

    def freeze() -> None:
        gc.disable()
        gc.freeze()

    if freeze.__qualname__ not in _AT_EXIT:
        _AT_EXIT.add(freeze.__qualname__)
        atexit.register(freeze)


_AT_EXIT: set[str] = set()


def _warm_up_kernels(mode: str, scheme: str | None) -> None:
    """Import and load the grouping and pricing kernels from Numba's cache in a background thread while the cases
    are read (Numba and its set-up take about 0.5 s a process; Arrow's readers release the GIL meanwhile). Best
    effort: a failure here (an unknown scheme) is left to the run itself to report."""
    import threading

    def run() -> None:
        try:
            if mode == "dip":
                from dipsim.grouping.dip import warm_up as warm_up_grouping

                warm_up_grouping().join()
            elif scheme:
                from dipsim.grouping.drg import warm_up as warm_up_drg

                warm_up_drg(scheme).join()
            from dipsim.pricing import warm_up

            warm_up().join()
        except Exception:  # reported by the run that needs the kernel
            pass

    threading.Thread(target=run, name="dipsim-warm-up", daemon=True).start()


def _quality(path) -> dict[str, float] | None:
    """hospital_id -> quality score from --quality (None without one)."""
    import pyarrow.compute as pc

    from dipsim.io.readers import read_table_file

    if not path:
        return None
    table = read_table_file(path, "quality scores table")
    if not {"hospital_id", "quality_score"} <= set(table.column_names):
        raise InputError(f"{path}: needs columns hospital_id and quality_score")
    return dict(zip(pc.cast(table["hospital_id"], "string").to_pylist(),
                    pc.cast(table["quality_score"], "float64").to_pylist()))


def cmd_settle(args) -> int:
    import pyarrow as pa

    from dipsim.io.writers import OutputFolder
    from dipsim.payment.chain import discharge_days, run_chain
    from dipsim.payment.terms import command_line_scheme, drg_scheme, settlement_day, terms_record
    from dipsim.region import budgets_from_cost

    console = _console(args)
    policy = _policy_with_overrides(args)
    mode = policy.get("payment.mode")
    _warm_up_kernels(mode, drg_scheme(policy, None, args.scheme))
    region = _region(args, console, mode, args.input)
    cases, hospitals = region.cases, region.hospitals
    # the CHS-DRG scheme: the policy's payment.drg_scheme on the settlement day, else --scheme (both: the same one)
    scheme = command_line_scheme(policy, settlement_day(discharge_days(cases), args.on), args.scheme) \
        if mode == "drg" else None
    # the cases are grouped in a thread while their pools and hospitals are coded and checked (a failed check stops
    # the run before anything is priced; the grouping's own errors are raised after the checks, as before)
    grouping = _InThread(_grouped, args, cases, mode, scheme)
    case_set = region.case_set  # pools and hospitals coded once: the checks, the budgets and the chain read them
    if args.budget_share:
        budgets = budgets_from_cost(cases, args.budget_share, policy.get("budget.total"), case_set)
        policy = policy.overlay({"budget.total": budgets}, name=policy.name)
    _check_region(args, region, [("", policy)], args.on, case_set.settlement_day(args.on))
    with _progress(console, f"grouping ({mode}) and pricing", 1) as update:
        grouped = grouping.result()
        aux = None
        if args.auxiliary:
            from dipsim.auxiliary import auxiliary_table, load_auxiliary

            aux = auxiliary_table(cases, load_auxiliary(args.auxiliary))["aux_factor"].to_numpy()
        try:
            run = run_chain(case_set, grouped, hospitals, policy, args.on, aux, _quality(args.quality))
        except ValueError as exc:
            raise InputError(str(exc)) from exc
        update(1, 1)
    out = OutputFolder(args.out)
    table = run.case_table()  # encoded in a thread while the tables below are made and written
    out.parquet(table, "cases.parquet", background=True, **run.case_table_options(table))
    out.csv(run.hospitals, "hospitals.csv")
    out.csv(run.pools, "pools.csv")
    out.csv(region.rejects(), "rejects.csv")
    if run.review is not None:  # special-case review: applied / approved / rate / amount per hospital
        out.csv(pa.Table.from_pandas(run.review.hospitals, preserve_index=False), "review.csv")
    out.json(terms_record(run.terms), "terms.json")  # what explain --case-id names, without the policy file
    day = run.terms.settlement_day
    out.manifest({"command": "settle", "policy": policy.source, "policy_name": policy.name,
                  "policy_sha256": policy.digest(), "overlays": list(policy.overlays),
                  "policy_day": day.isoformat() if day else None, "on": args.on,
                  "case_policy_days": sorted({t.day.isoformat() for t in run.terms.periods if t.day}),
                  "mode": mode, "catalog": args.catalog, "scheme": scheme,
                  "auxiliary": args.auxiliary, "quality": args.quality, **region.manifest(),
                  "inputs": _file_digests(args.input, args.hospitals, *([args.quality] if args.quality else []))})
    print(region.counts())
    for row in run.pools.to_pylist():
        print(f"pool {row['pool']}: budget available {row['budget_available']:,} yuan, point value "
              f"{row['point_value']:.6f} ({row['status']}), {row['total_points']:,.1f} points, fund payout "
              f"{row['fund_payout']:,} yuan")
    print(f"{run.hospitals.num_rows:,} hospital-pool rows, {len(case_set):,} cases priced -> {out.path}")
    return EXIT_OK


# ---------------------------------------------------------------- scenarios


def cmd_scenarios_run(args) -> int:
    import pyarrow as pa

    from dipsim.io.writers import OutputFolder
    from dipsim.payment.chain import discharge_days
    from dipsim.payment.terms import command_line_scheme, settlement_day
    from dipsim.region import budgets_from_cost
    from dipsim.scenarios import BASELINE, grouped_cached, inputs_digest, load_scenarios, run_scenarios, run_schemes

    console = _console(args)
    scenario_set = load_scenarios(args.file, max_variants=args.max_variants)
    base = scenario_set.baseline
    mode = base.get("payment.mode")
    console.print(f"{scenario_set.name}: the baseline and {len(scenario_set.variants):,} variant(s)")
    budgets = _budgets(args, base)
    region = _region(args, console, mode, args.cases)
    cases, hospitals = region.cases, region.hospitals
    if args.budget_share:
        budgets = budgets_from_cost(cases, args.budget_share, budgets)
    scenario_set.baseline = base.overlay({"budget.total": budgets}, name=base.name)
    day = settlement_day(discharge_days(cases), args.on)
    _check_region(args, region, [(BASELINE, scenario_set.baseline)] + [
        (f"variant {v.name!r}", scenario_set.baseline.overlay(v.changes)) for v in scenario_set.variants],
        args.on, day)
    # DRG mode: each run's scheme (a variant may set payment.drg_scheme), the baseline's from its policy or --scheme
    scheme = command_line_scheme(scenario_set.baseline, day, args.scheme, "the baseline policy") \
        if mode == "drg" else None
    schemes = run_schemes(scenario_set, day, scheme)
    inputs = _file_digests(args.cases, args.hospitals)
    input_digest = inputs_digest(inputs)
    distinct = list(dict.fromkeys(schemes.values()))  # grouped once per distinct scheme, in order of first use
    with _progress(console, f"grouping ({mode}{': ' + ', '.join(distinct) if distinct else ''}, cached)",
                   max(len(distinct), 1)) as update:
        catalog = None
        if mode == "dip":
            from dipsim.grouping.dip import load_catalog

            catalog = load_catalog(args.catalog)
            grouped = grouped_cached(cases, input_digest, mode, catalog)
            update(1, 1)
        else:
            grouped = {}
            for number, name in enumerate(distinct):
                grouped[name] = grouped_cached(cases, input_digest, mode, catalog, name)
                update(number + 1, len(distinct))
    with _progress(console, f"{scenario_set.name}: pricing and settling", len(scenario_set.variants) + 1) as update:
        try:
            results = run_scenarios(cases, hospitals, scenario_set, grouped, progress=update, on=args.on,
                                    scheme=scheme)
        except ValueError as exc:
            raise InputError(str(exc)) from exc
    out = OutputFolder(args.out)
    for name, frame in results.tables().items():
        out.csv(pa.Table.from_pandas(frame, preserve_index=False), f"{name}.csv")
    out.csv(region.rejects(), "rejects.csv")
    from dipsim.report.export import SCENARIO_XLSX_ROWS, write_scenario_xlsx

    if write_scenario_xlsx(results, out.path / "hospitals.xlsx", args.lang):  # for Excel: Chinese headers, yuan
        out.add("hospitals.xlsx")
    else:
        console.print(f"hospitals.xlsx not written: {len(results.hospitals):,} rows are more than "
                      f"{SCENARIO_XLSX_ROWS:,} (hospitals.csv has them all)")
    if not args.no_report:
        from dipsim.report.html import write_report

        with _progress(console, "report", 1) as update:
            write_report(results, out.path / "report.html", scenario_set.title, args.lang)
            out.add("report.html")
            update(1, 1)
    out.manifest({"command": "scenarios run", "scenario_file": args.file, "scenario": scenario_set.name,
                  "title": scenario_set.title, "baseline_policy": scenario_set.baseline.source,
                  "baseline_sha256": scenario_set.baseline.digest(), "on": args.on,
                  "variants": [{"name": v.name, "set": v.changes} for v in scenario_set.variants],
                  "mode": mode, "catalog": args.catalog, "schemes": schemes, "budgets": budgets, "inputs": inputs,
                  **region.manifest()})
    print(region.counts())
    print(results.summary.to_string(index=False))
    if results.splits is not None:
        moved = results.scheme_hospitals.groupby("scenario", sort=False)["moved_cases"].sum()
        split = results.splits.groupby("scenario", sort=False).size()
        for name, count in moved.items():
            print(f"{name}: {count:,} cases moved group under {schemes[name]} (from {schemes[BASELINE]}); "
                  f"{split.get(name, 0):,} baseline groups split (splits.csv, regrouping.csv, scheme_hospitals.csv)")
    print(f"{len(scenario_set.variants) + 1} scenarios x {results.hospitals['hospital_id'].nunique():,} hospitals "
          f"-> {out.path}")
    return EXIT_OK


# ---------------------------------------------------------------- project


def cmd_project(args) -> int:
    import pyarrow as pa

    from dipsim.io.writers import OutputFolder
    from dipsim.payment.chain import discharge_days
    from dipsim.payment.terms import command_line_scheme, settlement_day
    from dipsim.policy import load_policy
    from dipsim.project import ageing_warning, load_projection
    from dipsim.projection.levers import lever_scenarios, project_levers
    from dipsim.region import budgets_from_cost
    from dipsim.scenarios import grouped_cached, inputs_digest

    console = _console(args)
    spec = load_projection(args.file)
    policy_path = args.policy or spec.policy
    if not policy_path:
        raise InputError(f"{args.file}: no policy: set [projection] policy = \"POLICY.toml\" or give --policy")
    policy = load_policy(policy_path)
    scenarios = lever_scenarios(spec, policy)  # every scenario checked before the cases are read
    mode = policy.get("payment.mode")
    budgets = _budgets(args, policy)
    region = _region(args, console, mode, args.cases)
    cases, hospitals = region.cases, region.hospitals
    if args.budget_share:
        budgets = budgets_from_cost(cases, args.budget_share, budgets, region.case_set)
    policy = policy.overlay({"budget.total": budgets}, name=policy.name)
    day = settlement_day(discharge_days(cases), None)
    _check_region(args, region, [("", policy)] + [(f"scenario {s.name!r}", policy.overlay(s.changes))
                                                  for s in scenarios[1:]], None, day)
    scheme = command_line_scheme(policy, day, args.scheme) if mode == "drg" else None
    inputs = _file_digests(args.cases, args.hospitals)
    console.print(f"{spec.name}: the base year and {spec.years} projected year(s), {cases.num_rows:,} base cases"
                  + (f", {len(scenarios)} scenarios" if len(scenarios) > 1 else ""))
    warnings = list(dict.fromkeys(w for s in scenarios if (w := ageing_warning(cases, s.spec))))
    for warning in warnings:  # shown with --quiet too
        _console(argparse.Namespace(quiet=False)).print(f"warning: {warning}", markup=False, soft_wrap=True)
    with _progress(console, f"grouping ({mode}, cached)", 1) as update:
        catalog = None
        if mode == "dip":
            from dipsim.grouping.dip import load_catalog

            catalog = load_catalog(args.catalog)
        grouped = grouped_cached(cases, inputs_digest(inputs), mode, catalog, *([scheme] if scheme else []))
        update(1, 1)
    aux_factor, groups = _projection_moves(args, [s.spec for s in scenarios], cases, grouped, mode, catalog, scheme)

    def year_done(name: str, year: int, total: int) -> None:
        head = f"{name}: " if len(scenarios) > 1 else ""
        console.print(head + (f"year {year} of {total} settled" if year else "the base year (year 0) settled"))

    try:
        with _progress(console, f"{args.draws} draws x {len(scenarios)} scenario(s)", args.draws * len(scenarios)) \
                if args.draws else contextlib.nullcontext(lambda done, total: None) as update:
            done: dict[str, int] = {}

            def draw_done(name: str, k: int, total: int) -> None:
                done[name] = k
                update(sum(done.values()), total * len(scenarios))

            results = project_levers(cases, hospitals, policy, scenarios, grouped, aux_factor, draws=args.draws or 0,
                                     seed=args.seed, scheduler=args.scheduler, progress=year_done,
                                     draw_progress=draw_done, groups=groups)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    drawn = results.drawn
    out = OutputFolder(args.out)
    for name, frame in results.tables().items():
        out.csv(pa.Table.from_pandas(frame, preserve_index=False), f"{name}.csv")
    if drawn is not None:
        out.csv(pa.Table.from_pandas(drawn.bands, preserve_index=False), "bands.csv")
        out.csv(pa.Table.from_pandas(drawn.parameters, preserve_index=False), "parameters.csv")
        out.parquet(pa.Table.from_pandas(drawn.draws_table(), preserve_index=False), "draws.parquet")
    fields = {"command": "project", "projection_file": args.file, "projection": spec.name, "title": spec.title,
              "scenarios": [{"name": s.name, "title": s.title, "policy": s.changes} for s in scenarios],
              "years": spec.years, "seed": spec.seed, "policy": policy.source, "policy_name": policy.name,
              "policy_sha256": policy.digest(), "mode": mode, "catalog": args.catalog, "scheme": scheme,
              "auxiliary": args.auxiliary, "budgets": budgets, "draws": args.draws or 0,
              "draw_seed": (spec.seed if args.seed is None else args.seed) if args.draws else None,
              "distributions": {path: vars(d) for path, d in _distributions(spec).items()}, "warnings": warnings,
              "inputs": _file_digests(args.file, args.cases, args.hospitals, *([policy_path] if policy_path else [])),
              **region.manifest()}
    if not args.no_report:
        from dipsim.projection.plots import projection_figures
        from dipsim.projection.report import write_projection_report

        with _progress(console, "figures and report", 1) as update:
            figures = projection_figures(results.years, results.hospitals, args.lang,
                                         drawn.bands if drawn is not None else None, results.titles)
            for name, png in figures.items():
                (out.path / f"{name}.png").write_bytes(png)
                out.add(f"{name}.png")
            write_projection_report(results, figures, fields, out.path / "report.html", spec.title or spec.name,
                                    args.lang)
            out.add("report.html")
            update(1, 1)
    out.manifest(fields)
    print(region.counts())
    for row in results.years.itertuples():
        head = f"{row.scenario}: " if len(scenarios) > 1 else ""
        balance = f", balance {row.balance:,.2f} yuan ({row.months_of_capacity:.1f} months)" \
            if row.balance is not None and row.balance == row.balance else ""
        print(f"{head}year {row.year} pool {row.pool}: point value {row.point_value:.6f}, {row.points:,.1f} points, "
              f"fund payout {row.fund_payout:,.2f} yuan{balance}")
    if drawn is not None:
        b = drawn.bands
        for row in b[(b["what"] == "pool") & (b["measure"] == "point_value")].itertuples():
            head = f"{row.scenario}: " if len(scenarios) > 1 else ""
            print(f"{head}year {row.year} pool {row.pool}: point value over {row.draws} draws p10 {row.p10:.6f}, "
                  f"p50 {row.p50:.6f}, p90 {row.p90:.6f}")
    if len(scenarios) > 1:
        _print_side_by_side(results.comparison, args.lang)
    print(f"{len(scenarios)} scenario(s) x {spec.years + 1} years x {results.hospitals['hospital_id'].nunique():,} "
          f"hospitals -> {out.path}")
    return EXIT_OK


def _projection_moves(args, specs, cases, grouped, mode: str, catalog, scheme):
    """The base cases' aux factors (--auxiliary, DIP) and the group table that severity / intensity moves need
    (`dipsim.projection.moves`; None when no scenario of the file moves a case)."""
    from dipsim.projection.moves import group_table, wanted

    aux = aux_table = aux_factor = None
    if args.auxiliary:
        from dipsim.auxiliary import auxiliary_table, load_auxiliary

        aux = load_auxiliary(args.auxiliary)
        aux_table = auxiliary_table(cases, aux)
        aux_factor = aux_table["aux_factor"].to_numpy()
    if not any(map(wanted, specs)):
        return aux_factor, None
    diagnoses = None
    if mode == "drg" and "diagnoses" in cases.column_names:  # DRG intensity: where each diagnosis is treated
        from dipsim.supervise import first_codes

        diagnoses = first_codes(cases["diagnoses"]).to_numpy(zero_copy_only=False)
    return aux_factor, group_table(grouped, mode, catalog, scheme, aux_table, aux, diagnoses)


def _print_side_by_side(comparison, lang: str) -> None:
    """The scenarios side by side on stdout (rich; every cell plain text, no markup read from a title)."""
    from rich.table import Table
    from rich.text import Text

    from dipsim.projection.levers import side_by_side

    frame = side_by_side(comparison, lang)
    table = Table()
    for name in frame.columns:
        table.add_column(Text(str(name)), overflow="fold")
    for row in frame.itertuples(index=False, name=None):
        table.add_row(*[Text(str(v)) for v in row])
    Console(file=sys.stdout, highlight=False, width=max(120, 28 * len(frame.columns))).print(table)


def _distributions(spec) -> dict:
    from dipsim.project import _path_text

    return {_path_text(path): d for path, d in sorted(spec.distributions.items(), key=lambda i: _path_text(i[0]))}


# ---------------------------------------------------------------- nightly


def cmd_nightly(args) -> int:
    from dipsim.io.readers import read_table_file
    from dipsim.io.validate import counts_line
    from dipsim.nightly import run_nightly

    seasonality = None
    if args.seasonality:
        table = read_table_file(args.seasonality, "seasonality table").to_pydict()
        seasonality = {int(m): float(v) for m, v in zip(table["month"], table["share"])}
    result = run_nightly(Path(args.claims), Path(args.policy), Path(args.hospitals), Path(args.state),
                         Path(args.out), args.catalog, args.scheme, seasonality,
                         log=(lambda _: None) if args.quiet else print, engine=args.engine,
                         scheduler=args.scheduler, processes=args.processes)
    totals = result.totals
    print(counts_line(totals["rows_read"], totals["accepted"], totals["rejected"],
                      {"duplicate case ids of earlier partitions": totals["duplicates_of_earlier_partitions"]}))
    print(f"{result.partitions} partitions ({result.grouped_now} grouped now), {result.months} months, budget share "
          f"{result.budget_share:.4f} -> {result.run_dir} (latest)")
    return EXIT_OK


# ---------------------------------------------------------------- screen


def cmd_screen(args) -> int:
    """Validate, group and run the supervision screens; write flags.csv, hospitals.csv, rejects.csv, manifest.json.
    The input is read a piece at a time and the screens keep per-patient, per-group and per-hospital state
    (`supervise_stream`): memory does not grow with the number of cases."""
    import pyarrow as pa

    from dipsim.grouping.drg import warm_up
    from dipsim.io.validate import REJECT_SCHEMA, counts_line, duplicate_rows, iter_case_batches
    from dipsim.io.writers import OutputFolder
    from dipsim.policy import Policy, load_policy
    from dipsim.supervise import SCREENS
    from dipsim.supervise_stream import FLAG_SCHEMA, SCREEN_COLUMNS, bucket_count, screen_stream

    console = _console(args)
    policy = load_policy(args.policy) if args.policy else Policy(values={})
    catalog = _catalog(args) if args.catalog else None
    scheme = _scheme(args, compiled=True)
    warm_up(scheme)
    mapping, options, sheet = _read_options(args)
    # a `dipsim validate` output is read with only the columns the screens and the grouping need (all for DIP)
    pieces = iter_case_batches(args.input, SCREEN_BATCH_ROWS, options, mapping, args.encoding, sheet,
                               columns=None if catalog else list(SCREEN_COLUMNS))
    out = OutputFolder(args.out)
    counts = {"rows_read": 0, "accepted": 0, "rejected": 0, "duplicate_case_ids": 0}
    with out.csv_parts("rejects.csv", REJECT_SCHEMA) as rejects, \
            _progress(console, "reading, grouping and screening", None) as update:

        def accepted():
            for result in pieces:
                rejects(result.rejects)
                counts["rows_read"] += result.rows_read
                counts["accepted"] += result.n_accepted
                counts["rejected"] += result.n_rejected
                counts["duplicate_case_ids"] += duplicate_rows(result.rejects)
                update(counts["rows_read"], None)
                yield result.accepted

        with out.csv_parts("flags.csv", FLAG_SCHEMA) as flags:
            screens = screen_stream(accepted(), policy, scheme, catalog, flags=flags,
                                    buckets=bucket_count(_expected_cases(args.input)), work_dir=out.path)
        out.csv(pa.Table.from_pandas(screens.hospitals, preserve_index=False), "hospitals.csv")
    hospitals = screens.hospitals
    upcoding = hospitals.loc[hospitals.get("upcoding_flag", False) == True, "hospital_id"]  # noqa: E712
    out.manifest({"command": "screen", "inputs": _file_digests(args.input), "policy": args.policy,
                  "policy_sha256": policy.digest(),
                  "grouping": {"drg_scheme": args.scheme, "dip_catalog": str(catalog.source) if catalog else None},
                  **counts, "flags": screens.flag_counts, "skipped": screens.skipped,
                  "upcoding_hospitals": upcoding.tolist()})
    line = counts_line(counts["rows_read"], counts["accepted"], counts["rejected"],
                       {"duplicate case ids": counts["duplicate_case_ids"]})
    print(f"{line}; flags: "
          + ", ".join(f"{s} {screens.flag_counts[s]:,}" for s in SCREENS if s not in screens.skipped)
          + f"; upcoding hospitals: {', '.join(upcoding) or 'none'} -> {out.path}")
    for screen, why in screens.skipped.items():
        console.print(f"{screen} not run: {why}")
    return EXIT_OK


def _expected_cases(path) -> int:
    """About how many cases `path` holds, from Parquet footers (a text file: by its size), to size buckets."""
    from dipsim.io.readers import PARQUET_SUFFIXES, parquet_files, parquet_metadata

    path = Path(path)
    try:
        if path.is_dir() or path.suffix.lower() in PARQUET_SUFFIXES:
            return sum(parquet_metadata(f).num_rows for f in parquet_files(path))
        return path.stat().st_size // 100
    except (OSError, DipsimError):
        return 0


# ---------------------------------------------------------------- synth


def _synthesize(args, console: Console, out: Path):
    from dipsim.synth import synthesize_region

    with _progress(console, "synthesising cases", args.cases) as update:
        return synthesize_region(out, cases=args.cases, hospitals=args.hospitals, seed=args.seed, year=args.year,
                                 progress=update)


def cmd_synth(args) -> int:
    console = _console(args)
    if args.years > 1:
        return _synthesize_years(args, console, Path(args.out))
    trend = [name for name in ("volume_growth", "fast_volume_growth", "cost_growth", "drift_share", "drift_factor",
                               "budget_growth", "drift_model") if getattr(args, name) is not None]
    if trend:
        raise InputError(f"--{trend[0].replace('_', '-')} is a trend of a multi-year region: give --years N (N > 1)")
    s = _synthesize(args, console, Path(args.out))
    print(f"synthesised {s.cases:,} cases in {s.hospitals} hospitals (seed {s.seed}, year {s.year}) -> {s.out_dir} "
          f"in {s.elapsed_s:.1f} s; ground truth: {len(s.upcoding_hospitals)} upcoding hospitals "
          f"({s.upcoded_cases:,} cases), {len(s.split_stay_hospitals)} split-stay hospitals "
          f"({s.split_pairs:,} pairs); {s.readmissions:,} readmissions")
    return EXIT_OK


def _synthesize_years(args, console: Console, out: Path) -> int:
    from dipsim.synth.years import Trends, synthesize_years

    given = {name: getattr(args, name) for name in ("volume_growth", "fast_volume_growth", "cost_growth",
                                                     "drift_share", "drift_factor", "budget_growth", "drift_model")
             if getattr(args, name) is not None}
    if "drift_factor" in given and given.get("drift_model") != "points":
        raise InputError("synth --years: --drift-factor is the points drift model's: give --drift-model points "
                         "(the default, moves, recodes cases into the next group up: no factor)")
    with _progress(console, "synthesising years", args.years) as update:
        try:
            s = synthesize_years(out, years=args.years, cases=args.cases, hospitals=args.hospitals, seed=args.seed,
                                 year=args.year, trends=Trends(**given), progress=update)
        except ValueError as exc:
            raise InputError(f"synth --years: {exc}") from exc
    t = s.trends
    print(f"synthesised {s.years} years of {args.hospitals} hospitals (seed {args.seed}, years {args.year}-"
          f"{args.year + s.years - 1}): {', '.join(f'{n:,}' for n in s.cases_by_year)} cases -> {s.out_dir} in "
          f"{s.elapsed_s:.1f} s; injected: volume +{t.volume_growth:.0%} a year (+{t.fast_volume_growth:.0%} in "
          f"{', '.join(t.volume_growth_by_hospital)}), coding drift {', '.join(t.drift_share_by_hospital)} "
          f"({t.drift_share:.0%} of cases a year "
          f"{'recoded to the next group up' if t.drift_model == 'moves' else f'to x{t.drift_factor:g} points'}), "
          f"cost +{t.cost_growth:.0%} a year, "
          f"budget +{t.budget_growth:.0%} a year; truth: truth.json, truth_projection.toml, budgets.csv")
    return EXIT_OK


# ---------------------------------------------------------------- demo


def cmd_demo(args) -> int:
    """The main job on the embedded default: synthesise a region, validate it, group it under CHS-DRG 1.1 and
    calibrate DRG weights on its costs, print the region by hospital level; build a DIP catalogue from it, group it
    to that catalogue and settle it under the default policy."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as pads
    import pyarrow.parquet as pq

    from dipsim.catalog import CatalogOptions, build_catalog, write_catalog
    from dipsim.demo import demo_policy, demo_scenarios, region_summary, settle_demo
    from dipsim.grouping.dip import DipCatalog, group_dip_table
    from dipsim.grouping.drg import group_table
    from dipsim.grouping.grouped_cases import group_dip
    from dipsim.io.pipeline import validate_to_dir
    from dipsim.io.writers import write_csv, write_parquet
    from dipsim.region import budgets_from_cost
    from dipsim.weights import calibrate_weights

    console = _console(args)
    out = Path(args.out)
    console.print(f"[bold]dipsim demo[/bold]: a synthetic region of {args.cases:,} cases, {args.hospitals} hospitals, "
                  f"seed {args.seed} -> {out}")
    _synthesize(args, console, out / "region")
    with _progress(console, "validating", 12) as update:
        summary = validate_to_dir(out / "region" / "cases", out / "validated", progress=update)
    print(summary.counts_line())
    _print_reasons(console, "warnings", summary.warning_reasons)
    cases = pads.dataset(out / "validated" / "accepted", format="parquet").to_table()
    with _progress(console, "grouping (chs-drg-1.1)", 1) as update:
        groups = group_table(cases, scheme="chs-drg-1.1")
        update(1, 1)
    write_parquet(groups, out / "grouped.parquet")
    drg = groups["drg"].to_pandas()
    print(f"grouped {len(drg):,} cases into {drg.nunique():,} DRGs under chs-drg-1.1; "
          f"QY {drg.str.endswith('QY').sum():,}, ungroupable (0000) {drg.str.startswith('0000').sum():,}")
    weights = calibrate_weights(groups["drg"].to_numpy(zero_copy_only=False), cases["total_cost"].to_numpy())
    write_csv(pa.Table.from_pandas(weights, preserve_index=False), out / "drg_weights.csv")
    print(region_summary(cases, groups, weights, out / "region" / "hospitals.parquet"))
    with _progress(console, "DIP catalogue and grouping", 1) as update:
        catalog = build_catalog(cases, CatalogOptions())
        write_catalog(catalog, out / "dip_catalog", [{"path": str(out / "validated" / "accepted"),
                                                      "accepted": cases.num_rows}])
        demo_catalog = DipCatalog(catalog.groups, catalog.options, "demo", catalog.keys)
        dip = group_dip_table(cases, demo_catalog)
        write_parquet(dip, out / "dip_grouped.parquet")
        update(1, 1)
    kinds = catalog.summary()["groups"]
    print(f"DIP catalogue: {kinds.get('core', 0):,} core groups (threshold {catalog.threshold}, holding "
          f"{catalog.coverage:.1%} of the cases) + {kinds.get('comprehensive', 0):,} comprehensive groups; points "
          f"{pc.min(catalog.groups['points']).as_py():,.1f} to {pc.max(catalog.groups['points']).as_py():,.1f}")
    # settlement and scenarios share one DIP pricing input, one hospitals table and budgets of 60% of cost
    grouped = group_dip(cases, demo_catalog)
    hospitals = pq.read_table(out / "region" / "hospitals.parquet")
    budgets = budgets_from_cost(cases, 0.6)
    settled, lines = settle_demo(cases, hospitals, grouped, demo_policy(budgets), out)
    print("\n".join(lines))
    reports = []
    for report, line in demo_scenarios(cases, hospitals, grouped, budgets, out):
        reports.append(report)
        print(line)
    console.print(f"region: {out / 'region'}   validated: {out / 'validated'}   groups: {out / 'grouped.parquet'}   "
                  f"weights: {out / 'drg_weights.csv'}   DIP: {out / 'dip_catalog'}, {out / 'dip_grouped.parquet'}   "
                  f"settlement: {settled}")
    for report in reports:
        console.print(f"report: {report}")
    return EXIT_OK


# ---------------------------------------------------------------- serve / users


def _server_extra():
    """FastAPI, uvicorn and argon2-cffi: the optional `server` extra."""
    try:
        import argon2  # noqa: F401
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise InputError(f"dipsim serve needs the server extra ({exc.name} is missing): "
                         "pip install 'dipsim[server]'") from None


def cmd_serve(args) -> int:
    """The HTTP API on the data folder (--data), the demo region built into it with --demo."""
    _server_extra()
    import uvicorn

    from dipsim.server.app import create_app

    console = _console(args)
    if args.demo:
        console.print(f"the demo region ({args.demo_cases:,} cases) and accounts in {args.data}, made when absent")
    app = create_app(args.data, demo=args.demo, demo_cases=args.demo_cases, workers=args.workers,
                     max_upload_bytes=args.max_upload_mb << 20, max_draws=args.max_draws)
    server = app.state.server
    for name, password in server.demo_passwords.items():
        user = server.accounts.get(name)
        scope = f", hospital {user.hospital_id}" if user and user.hospital_id else ""
        print(f"demo account {name} ({user.role if user else ''}{scope}): password {password}  (shown once)")
    if args.demo and not server.demo_passwords:
        print(f"the demo accounts exist already in {args.data} (passwords shown when made; set a new one with "
              f"dipsim users add NAME --reset --role ROLE [--hospital ID] --data {args.data})")
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        console.print(f"warning: listening on {args.host} without TLS: put it behind a TLS proxy", markup=False)
    print(f"dipsim workbench on http://{args.host}:{args.port}/app/ ; API on http://{args.host}:{args.port}/api  "
          f"(routes: /api/docs, /api/openapi.json); data {args.data}")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning" if args.quiet else "info")
    return EXIT_OK


def _password(console) -> str:
    """The new password: the first line of stdin when it is not a terminal, else asked twice."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    import getpass

    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise InputError("the two passwords differ")
    return first


def cmd_users(args) -> int:
    """Accounts of `dipsim serve` in the data folder: add (or --reset) one, list them, remove one."""
    _server_extra()
    from dipsim.server.accounts import Accounts
    from dipsim.server.store import DataFolder

    data = DataFolder(args.data)
    accounts = Accounts(data.users_path)
    if args.users_command == "list":
        for name in accounts.names():
            user = accounts.get(name)
            print(f"{name}\t{user.role}\t{user.hospital_id or ''}")
        return EXIT_OK
    if args.users_command == "remove":
        if not accounts.remove(args.name):
            raise InputError(f"no user {args.name!r}")
        data.audit.write(action="remove user", user=args.name, by="dipsim users")
        print(f"removed {args.name}")
        return EXIT_OK
    user = accounts.add(args.name, _password(_console(args)), args.role, args.hospital, replace=args.reset)
    data.audit.write(action="add user", user=user.name, role=user.role, hospital_id=user.hospital_id,
                     by="dipsim users")
    print(f"{'reset' if args.reset else 'added'} {user.name} ({user.role}"
          f"{', hospital ' + user.hospital_id if user.hospital_id else ''}) in {data.users_path}")
    return EXIT_OK


# ---------------------------------------------------------------- parser


ON_HELP = ("read every policy parameter on this day, for every case (a what-if). Default: a case-level parameter "
           "(outlier, coefficient, TCM, supervision cut) on each case's discharge date, a pool-level one (budget, "
           "reserve, bands, review, cycle) on the settlement day, the last discharge date of the cases")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dipsim",
        description="DIP/DRG hospital-payment simulation: read and validate claims, synthesise regions, "
                    "group, price and settle under a regional global budget.",
        epilog="Exit codes: 0 ok; 1 bad input or policy, or a file or disk fault (one line naming the file, row/field "
               "or parameter); 2 usage error; 3 internal error (a bug in dipsim: please report it); 4 nightly: "
               "another run holds the lock.",
    )
    parser.add_argument("--version", action="version", version=f"dipsim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, help_text: str, func) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("-q", "--quiet", action="store_true", help="print only the result line(s), no progress")
        p.set_defaults(func=func)
        return p

    p = add("validate", "Read a case file (CSV in UTF-8/GB18030, Excel, Parquet or a folder of Parquet), check every "
                        "row, print rows read = accepted + rejected, and write accepted cases, rejects and warnings.",
            cmd_validate)
    p.add_argument("input", help="case file or folder of Parquet partitions")
    p.add_argument("-o", "--out", default="validated", help="output folder (default: ./validated)")
    _add_read_options(p)

    def add_region_options(p: argparse.ArgumentParser, cases: int) -> None:
        p.add_argument("--cases", type=_positive_int, default=cases, help=f"number of stays (default {cases:,})")
        p.add_argument("--hospitals", type=_positive_int, default=100, help="number of hospitals (default 100)")
        p.add_argument("--seed", type=int, default=20250101, help="random seed (default 20250101)")
        p.add_argument("--year", type=int, default=2025, help="calendar year of the discharges (default 2025)")

    p = add("group", "Group cases under a CHS-DRG scheme: OUT (.csv or .parquet) has case_id, drg, adrg, mdc, "
                     "cc_level and a reason for ungroupable cases (drg 0000). Rejected rows are listed beside OUT.",
            cmd_group)
    p.add_argument("input", help="case file (CSV/Excel/Parquet) or folder of Parquet partitions")
    p.add_argument("-o", "--out", required=True, help="output file, .csv or .parquet")
    p.add_argument("--scheme", default="chs-drg-1.1", help="grouper table version in grouper_tables/ "
                                                          "(default chs-drg-1.1; also chs-drg-1.1-beijing, "
                                                          "chs-drg-2.0), auto (the version in force on each "
                                                          "case's discharge date: --scheme-dates), or "
                                                          "dip with --catalog: OUT then has case_id, dip_group, "
                                                          "dip_points, match (exact/best/comprehensive/tcm/none), "
                                                          "reason")
    p.add_argument("--catalog", help="DIP catalogue folder from `dipsim catalog build` (with --scheme dip)")
    p.add_argument("--scheme-dates", metavar="FILE", help="with --scheme auto: the versions' effective dates "
                                                          "(default grouper_tables/scheme_dates.toml: 1.1 before "
                                                          "2025-01-01, 2.0 from then)")
    p.add_argument("--compare-schemes", metavar="A,B", help="group every case under two versions (e.g. "
                                                            "chs-drg-1.1,chs-drg-2.0): OUT has case_id, from_drg, "
                                                            "to_drg; OUT.transition.csv the transition table")
    _add_qy_option(p)
    _add_read_options(p)

    p = add("explain", "Explain in words why one case got its MDC, ADRG and DRG: which list matched, which "
                       "secondary code gave CC/MCC, which exclusion table cancelled which code; when the case "
                       "carries the insurer's group (医保实际分组结果), why not that group.", cmd_explain)
    p.add_argument("input", help="case file (CSV/Excel/Parquet) or folder of Parquet partitions: why the case got "
                                 "its group; or the output folder of `dipsim settle`: with --case-id, the case's "
                                 "payment chain step by step (each parameter's value on its discharge day, its "
                                 "source, each step's result), with --hospital, how the hospital's amounts add up")
    p.add_argument("--case-id", help="the case to explain")
    p.add_argument("--hospital", help="explain how this hospital's settlement amounts were built")
    p.add_argument("--scheme", default="chs-drg-1.1", help="grouper table version (default chs-drg-1.1), or dip "
                                                          "with --catalog")
    p.add_argument("--catalog", help="DIP catalogue folder from `dipsim catalog build` (with --scheme dip)")
    _add_qy_option(p)
    _add_read_options(p)

    p = add("screen", "Fund supervision screens (基金监管): split readmissions (分解住院), low-standard admissions "
                      "(低标入院), "
                      "long stays, 五同 repeats, upcoding hospitals (高套) and deaths in low-risk groups. Writes "
                      "OUT/flags.csv (one line per flagged case and screen, with the reason), hospitals.csv, "
                      "rejects.csv and manifest.json.", cmd_screen)
    p.add_argument("input", help="case file (CSV/Excel/Parquet) or folder of Parquet partitions")
    p.add_argument("-o", "--out", required=True, help="output folder")
    p.add_argument("--policy", help="policy TOML whose supervision.* parameters set the screens (default: the defaults "
                                    "in dipsim/data/policy_parameters.toml)")
    p.add_argument("--scheme", default="chs-drg-1.1", help="CHS-DRG tables for the MCC/CC levels and, without "
                                                          "--catalog, the groups (default chs-drg-1.1)")
    p.add_argument("--catalog", help="DIP catalogue folder: screen by its groups (a DIP city)")
    _add_qy_option(p)
    _add_read_options(p)

    def add_group(name: str, help_text: str, description: str):
        """A command with actions (`dipsim catalog build`): its sub-parsers; alone it prints its help."""
        group = sub.add_parser(name, help=help_text, description=description)
        group.set_defaults(func=lambda _: group.print_help() or EXIT_USAGE)
        return group.add_subparsers(dest=f"{name}_command", metavar="ACTION")

    catalog_sub = add_group("catalog", "DIP catalogues: build one from a city's past cases",
                            "DIP catalogues (病种目录库).")
    p = catalog_sub.add_parser(
        "build", help="Build a DIP catalogue from past cases with costs",
        description="Build a DIP catalogue: key = principal diagnosis subcategory + the set of procedures; keys "
                    "with >= THRESHOLD cases are core groups, the rest comprehensive groups by diagnosis category "
                    "x treatment; points = trimmed, year-weighted group mean / overall mean x SCALE. Writes "
                    "CATALOG/catalog.parquet, catalog.csv, coverage.md and manifest.json.")
    p.set_defaults(func=cmd_catalog_build, command="catalog build")
    p.add_argument("input", nargs="+", help="case files or folders (several years: one per year, or mixed)")
    p.add_argument("-o", "--out", required=True, help="output folder CATALOG")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the result line(s), no progress")
    p.add_argument("--threshold", type=_positive_int, default=15, help="cases a key needs to be a core group "
                                                                       "(default 15)")
    p.add_argument("--coverage", type=_share, help="instead of --threshold: the largest threshold whose core "
                                                   "groups still hold this share of the cases, e.g. 0.85")
    p.add_argument("--trim", type=_numbers, default=(2.5, 97.5), metavar="LOW,HIGH",
                   help="trimming percentiles within each group (default 2.5,97.5)")
    p.add_argument("--year-weights", type=_numbers, default=(1.0, 2.0, 7.0), metavar="W1,W2,...",
                   help="weights of the last years, oldest first (default 1,2,7)")
    p.add_argument("--scale", type=float, default=1000.0, help="points of the overall mean (default 1000; or 100)")
    p.add_argument("--reference-group", metavar="GROUP_ID",
                   help="a group fixed at SCALE points instead of the overall mean, e.g. 'K35.8/47.0901'")
    p.add_argument("--procedure-kinds", type=lambda t: tuple(k.strip() for k in t.split(",") if k.strip()),
                   metavar="KINDS", help="only these ICD-9 kinds count in the key, e.g. 手术,介入治疗,治疗性操作 "
                                         "(default: every procedure)")
    p.add_argument("--min-procedure-share", type=_share, metavar="SHARE",
                   help="DIP 2.0: a procedure counts in the key only if it carries this share of the case's cost, "
                        "e.g. 0.10; needs a procedure_costs column (one cost per procedure, in order)")
    p.add_argument("--cost-column", default="total_cost", help="the cost column (default total_cost)")
    p.add_argument("--tcm", metavar="FILE", help="TCM catalogue TOML (中医优势病种: diseases, treated_by, min_share; "
                                                 "see examples/dip_tcm.toml): TCM-treated cases of its diseases get "
                                                 "TCM groups at the Western group's points")
    _add_read_options(p)

    p = add("settle", "Group, price and settle a year of cases under a policy: the point value of every pool "
                      "and each hospital's payout, to the fen. Writes DIR/hospitals.csv, pools.csv, cases.parquet "
                      "(the pricing chain per case) and manifest.json.", cmd_settle)
    p.add_argument("input", help="case file (CSV/Excel/Parquet) or folder of Parquet partitions")
    p.add_argument("--policy", required=True, help="policy TOML (e.g. scenarios/baseline.toml)")
    p.add_argument("--hospitals", required=True, help="hospitals table (.parquet or .csv: hospital_id, level, "
                                                      "type, optional coefficient_override)")
    p.add_argument("-o", "--out", required=True, help="output folder")
    p.add_argument("--catalog", help="DIP catalogue folder (payment.mode = dip)")
    p.add_argument("--scheme", help="CHS-DRG scheme (payment.mode = drg) when the policy sets no "
                                    "payment.drg_scheme (default chs-drg-1.1); RW calibrated on the cases' costs")
    p.add_argument("--auxiliary", metavar="FILE", help="DIP auxiliary catalogue TOML (辅助目录; default: none)")
    p.add_argument("--quality", metavar="FILE", help="CSV of hospital_id, quality_score (0-100) for the release of "
                                                     "the quality deposit (default: 100 for every hospital)")
    p.add_argument("--set", action="append", default=[], metavar="PATH=VALUE",
                   help="override a policy parameter (TOML value), e.g. outlier.high_ratio=1.5; repeatable")
    p.add_argument("--budget", action="append", default=[], metavar="POOL=YUAN",
                   help="a pool's budget, e.g. 990100-employee=123456789.00; repeatable")
    p.add_argument("--budget-share", type=_share, metavar="SHARE",
                   help="for pools without a budget: SHARE x the pool's total cost billed by item")
    p.add_argument("--on", metavar="YYYY-MM-DD", type=_date, help=ON_HELP)
    _add_read_options(p)

    scenarios_sub = add_group("scenarios", "compare policy variants hospital by hospital",
                              "Scenarios: a baseline policy and its variants or sweeps.")
    p = scenarios_sub.add_parser(
        "run", help="Run a scenario file on a year of cases",
        description="Group the cases once, then price and settle the baseline and every variant of the scenario file "
                    "(scenarios/*.toml); write per hospital x scenario payouts and deltas against the baseline "
                    "(hospitals.csv), point values (pools.csv), winners and losers (summary.csv), totals by level "
                    "(by_level.csv) and manifest.json.")
    p.set_defaults(func=cmd_scenarios_run, command="scenarios run")
    p.add_argument("file", help="scenario file (TOML)")
    p.add_argument("--cases", required=True, help="case file or folder of Parquet partitions")
    p.add_argument("--hospitals", required=True, help="hospitals table (.parquet or .csv)")
    p.add_argument("--catalog", help="DIP catalogue folder (payment.mode = dip)")
    p.add_argument("--scheme", help="CHS-DRG scheme (payment.mode = drg) of the baseline when its policy sets no "
                                    "payment.drg_scheme (default chs-drg-1.1); a variant may set another one")
    p.add_argument("--budget", action="append", default=[], metavar="POOL=YUAN", help="a pool's budget; repeatable")
    p.add_argument("--budget-share", type=_share, metavar="SHARE",
                   help="for pools without a budget: SHARE x the pool's total cost billed by item")
    p.add_argument("-o", "--out", required=True, help="output folder")
    p.add_argument("--on", metavar="YYYY-MM-DD", type=_date, help=ON_HELP)
    p.add_argument("--max-variants", type=_positive_int, default=10_000, metavar="N",
                   help="refuse a scenario file of more variants than this before anything runs (default 10,000)")
    p.add_argument("--lang", choices=["zh", "en"], default="zh",
                   help="language of report.html and hospitals.xlsx (default zh)")
    p.add_argument("--no-report", action="store_true", help="write the tables only, no report.html")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the result line(s), no progress")
    _add_read_options(p)

    p = add("project", "Project several years from a base year of cases (PROJECTION.toml: volume and cost growth, "
                       "coding drift, the fund's income, budget rule and balance): each year a case set made from "
                       "the base year and settled by the same payment chain as `settle`, to the fen. Writes "
                       "DIR/years.csv (per year and pool), hospitals.csv (per year and hospital), comparison.csv, "
                       "the figures (point_value.png, balance.png, payout_by_level.png), report.html and "
                       "manifest.json; every [scenario.NAME] of the file (lever scenarios) side by side, with the "
                       "same seed.", cmd_project)
    p.add_argument("file", help="projection file (TOML; scenarios/projection_example.toml)")
    p.add_argument("--cases", required=True, help="the base year's cases: file or folder of Parquet partitions")
    p.add_argument("--hospitals", required=True, help="hospitals table (.parquet or .csv)")
    p.add_argument("--policy", help="policy TOML (default: [projection] policy of the file); a value dated by year "
                                    "is read on that year's days")
    p.add_argument("--catalog", help="DIP catalogue folder (payment.mode = dip)")
    p.add_argument("--scheme", help="CHS-DRG scheme (payment.mode = drg) when the policy sets no "
                                    "payment.drg_scheme (default chs-drg-1.1)")
    p.add_argument("--auxiliary", metavar="FILE", help="DIP auxiliary catalogue TOML (辅助目录: the cases' aux "
                                                       "factors, and DIP severity moves; default: none)")
    p.add_argument("--budget", action="append", default=[], metavar="POOL=YUAN",
                   help="a pool's base-year budget; repeatable")
    p.add_argument("--budget-share", type=_share, metavar="SHARE",
                   help="for pools without a budget: SHARE x the pool's base-year cost billed by item")
    p.add_argument("-o", "--out", required=True, help="output folder")
    p.add_argument("--lang", choices=["zh", "en"], default="zh",
                   help="language of the figures and report.html (default zh)")
    p.add_argument("--no-report", action="store_true", help="write the tables only, no figures nor report.html")
    p.add_argument("--draws", type=int, metavar="N",
                   help="Monte Carlo: N projections with the file's distributions drawn (draw k from the k-th "
                        "child seed of --seed); writes bands.csv (10/50/90%% per year, pool and hospital), "
                        "draws.parquet and parameters.csv beside the central projection, the 10-90%% bands in "
                        "the figures; every scenario with the same draws")
    p.add_argument("--seed", type=int, help="the draws' seed (default: [projection] seed of the file)")
    p.add_argument("--scheduler", metavar="ADDR",
                   help="run the draws on Dask: a scheduler's address, 'processes' (a local cluster of 2 "
                        "processes) or 'synchronous'; the same results as in this process")
    _add_read_options(p)

    p = add("nightly", "The nightly year-to-date point-value recalculation: group only new or changed claim "
                       "partitions (cached in STATE), settle the year to date with its share of the annual budget, "
                       "write OUT/runs/<id>/ atomically and switch OUT/latest. Exit 4: another run holds the lock.",
            cmd_nightly)
    p.add_argument("--claims", required=True, help="folder of monthly Parquet partitions of claims")
    p.add_argument("--policy", required=True, help="policy TOML with the annual budget per pool (budget.total)")
    p.add_argument("--hospitals", required=True, help="hospitals table (.parquet or .csv)")
    p.add_argument("--catalog", help="DIP catalogue folder (payment.mode = dip)")
    p.add_argument("--scheme", help="CHS-DRG scheme (payment.mode = drg) when the policy sets no "
                                    "payment.drg_scheme (default chs-drg-1.1)")
    p.add_argument("--seasonality", metavar="CSV", help="last year's share of the cost by month (columns month, "
                                                       "share) for the projection; default pro rata")
    p.add_argument("--engine", choices=["chunked", "memory", "dask"], default="chunked",
                   help="chunked (default): one partition at a time, memory bounded; memory: the year at once "
                        "(used anyway with special-case review or history coefficients); dask: partitions grouped "
                        "and priced on a Dask cluster (pip install 'dipsim[dask]')")
    p.add_argument("--scheduler", metavar="ADDR", help="Dask scheduler address (default: a local cluster)")
    p.add_argument("--processes", type=int, metavar="N",
                   help="chunked engine: group and price partitions in N worker processes, 1 in this process "
                        "(default: DIPSIM_NIGHTLY_PROCESSES, else 2 from a few million new or cached cases)")
    p.add_argument("--state", required=True, help="state folder (lock, cached partitions, log)")
    p.add_argument("--out", required=True, help="output folder (runs/<id>/ and the latest link)")

    p = add("synth", "Synthesise a year of a realistic pooling region: hospitals, monthly Parquet partitions of "
                     "cases, and ground truth for injected upcoding and split stays. Deterministic for a seed.",
            cmd_synth)
    add_region_options(p, 1_000_000)
    p.add_argument("--years", type=_positive_int, default=1, metavar="N",
                   help="N > 1: a region of N years (year1/ as one year, then year2/cases ...) with known injected "
                        "trends (volume, cost, coding drift in some hospitals) and their ground truth: truth.json, "
                        "a projection file from year 1 (truth_projection.toml) and budgets.csv (issue 20; "
                        "docs/synth_years.md). --cases is year 1's")
    for flag, default, what in (("--volume-growth", "0.03", "cases, every hospital"),
                                ("--fast-volume-growth", "0.10", "cases, the two fast-growing hospitals"),
                                ("--cost-growth", "0.04", "cost per case"),
                                ("--drift-share", "0.05", "share of the two drifting hospitals' cases coded up"),
                                ("--budget-growth", "0.05", "the budget (60%% of year 1's cost)")):
        p.add_argument(flag, type=float, metavar="RATE", help=f"--years: yearly rate, {what} (default {default})")
    p.add_argument("--drift-model", choices=("moves", "points"),
                   help="--years: how drift is injected: moves (default) recodes a picked case's procedures so that "
                        "the DIP grouper puts it in the group of its diagnosis next up by points (projection key "
                        "intensity_share_by_hospital; ground_truth/moved_cases.parquet); points: the older "
                        "points x --drift-factor, applied at settlement (ground_truth/drifted_cases.parquet)")
    p.add_argument("--drift-factor", type=float, metavar="X",
                   help="--years --drift-model points: a drifted case's group points x this (default 1.2)")
    p.add_argument("-o", "--out", required=True, help="output folder")

    p = add("demo", "The main job on the embedded default: synthesise a region, validate it, group it under "
                    "CHS-DRG 1.1 with weights calibrated on its costs, build a DIP catalogue from it, group it to "
                    "that, settle it (budget 60%% of cost), run the shipped scenarios and write their reports. "
                    "Needs no data.", cmd_demo)
    add_region_options(p, 200_000)
    p.add_argument("-o", "--out", default="dipsim_demo", help="output folder (default: ./dipsim_demo)")

    p = add("serve", "The browser workbench (/app/) and the HTTP API (OpenAPI at /api/openapi.json, routes at "
                     "/api/docs) on a data folder of "
                     "regions, runs, users and an audit log; --demo builds the demo region and two accounts into it "
                     "when absent. Needs pip install 'dipsim[server]'.", cmd_serve)
    p.add_argument("--data", default="dipsim_data", help="data folder, kept across restarts (default ./dipsim_data)")
    p.add_argument("--demo", action="store_true", help="build the demo region and accounts (bureau, hospital) when "
                                                      "absent; their passwords are printed once")
    p.add_argument("--demo-cases", type=_positive_int, default=200_000, help="cases of the demo region (default "
                                                                             "200,000, as dipsim demo)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--workers", type=_positive_int, default=1, help="runs at a time in the worker pool (default 1)")
    p.add_argument("--max-upload-mb", type=_positive_int, default=2048,
                   help="the most an upload's files may hold together, in MiB (default 2048: 2 GiB)")
    p.add_argument("--max-draws", type=_positive_int, default=200,
                   help="the most Monte Carlo draws of one projection on the 多年预测 page (default 200)")

    users_sub = add_group("users", "accounts of dipsim serve", "Accounts of `dipsim serve` in its data folder.")
    for action, text in (("add", "Add an account; the password is read from stdin (first line) or asked twice"),
                         ("list", "List the accounts: name, role, hospital"), ("remove", "Remove an account")):
        p = users_sub.add_parser(action, help=text, description=text)
        p.set_defaults(func=cmd_users, command=f"users {action}")
        p.add_argument("--data", default="dipsim_data", help="data folder (default ./dipsim_data)")
        p.add_argument("-q", "--quiet", action="store_true", help="print only the result line(s)")
        if action != "list":
            p.add_argument("name", help="user name (letters, digits, _ . @ -)")
        if action == "add":
            p.add_argument("--role", required=True, choices=["bureau", "hospital"],
                           help="bureau: everything; hospital: one hospital's own data and the point values")
            p.add_argument("--hospital", help="the hospital_id of a hospital account")
            p.add_argument("--reset", action="store_true", help="replace an existing account's password and role")
    return parser


def _date(text: str) -> str:
    """An ISO day, YYYY-MM-DD."""
    import datetime as dt

    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day YYYY-MM-DD") from None


def _share(text: str) -> float:
    value = float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError("must be a share in (0, 1], e.g. 0.85 or 85%")
    return value


def _numbers(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.replace("：", ":").replace(":", ",").split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, not {text!r}") from None


def _positive_int(text: str) -> int:
    value = int(text.replace(",", "").replace("_", ""))
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive whole number")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    _no_collection_at_exit()  # every command: teardown after Numba costs 0.5 s otherwise
    stdout, sys.stdout = sys.stdout, _PrintableStream(sys.stdout)
    try:
        return args.func(args)
    except DipsimError as exc:
        return _error(args, exc, exc.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of stdout went away (`dipsim explain ... | head`): nothing left to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), stdout.fileno())
        return EXIT_INPUT
    # the ordinary faults of files and machines, at the boundary: one line naming the file, exit 1
    except OSError as exc:  # no such file, a file where a folder should be, permission, a full or read-only disk
        names = " -> ".join(str(n) for n in (exc.filename, exc.filename2) if n is not None)
        return _error(args, f"{names}: {exc.strerror or exc}" if names else exc)  # pyarrow's name their file
    except MemoryError:
        return _error(args, "out of memory: the input does not fit in this machine's memory; split it (by month, "
                            "by pool) or use a machine with more memory (`dipsim nightly` settles a year one "
                            "partition at a time)")
    except Exception:  # an internal error, not the user's: say so with the traceback, exit > 2
        traceback.print_exc()
        print(f"dipsim {args.command}: internal error (a bug in dipsim {__version__}); please report it "
              "with the traceback above", file=sys.stderr)
        return EXIT_INTERNAL
    finally:
        sys.stdout = stdout


def _error(args, message, code: int = EXIT_INPUT) -> int:
    """The one error line of a failed command on stderr, control characters escaped (a message may quote a cell
    of a garbage file); returns the exit code."""
    print(printable(f"dipsim {args.command}: error: {message}"), file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
