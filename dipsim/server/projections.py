"""Projections of `dipsim serve` (多年预测, issue 20): a projection file (the shipped example
scenarios/projection_example.toml, packaged as dipsim/scenario_files, or a TOML the bureau pastes or uploads) run
on a region's cases, hospitals, grouping and its own baseline policy through `dipsim.project.project` (each year
settled by the one payment chain) and, with draws, `dipsim.project.project_draws`: the same functions `dipsim
project` calls, so a projection's numbers equal the command line's to the fen.

The projection file is data only: it is parsed from the request's text (`tomllib.loads`, at most
MAX_PROJECTION_TEXT characters) and checked by `project.projection_of`; its `[projection] policy` is never opened
(the region's baseline policy is used): a plain file name is noted as not read, a path (a folder, `..`, an absolute
or home path) is refused. The page's years (1 to MAX_PROJECTION_YEARS) replace the file's, its draws are capped by
the server's `max_draws` (`dipsim serve --max-draws`).

A projection runs off the event loop in its own worker (one at a time), with progress (the base year, each year,
each draw) and can be cancelled between two steps. It is kept in DIR/projections/<id>/: projection.toml (the text
run, for the audit), years.parquet, hospitals.parquet and, with draws, bands.parquet (`project`'s tables as they
are); the audit log has who, when, the text's, policy's and inputs' sha256.

Scope (as the other pages): point values (and their bands) are published to every account; the pools' budgets,
income, fund payout and balance, and the payouts summed by hospital level are the bureau's; a hospital account
reads its own hospital's rows and bands only. Tables may carry a `scenario` column (lever scenarios side by side):
kept in every row, summed separately by level.
"""


import hashlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import PurePosixPath, PureWindowsPath

import pandas as pd

from dipsim.io.errors import InputError
from dipsim.money import to_fen
from dipsim.report import present
from dipsim.report.present import Column
from dipsim.server.regions import yuan
from dipsim.server.runs import RunQueueFull
from dipsim.server.store import DataFolder, new_id, now

EXAMPLE_FILE = "projection_example.toml"  # the shipped example (`paths.scenarios_dir`)
MAX_PROJECTION_TEXT = 32 * 1024  # characters of a projection file sent to the server
MAX_PROJECTION_YEARS = 10  # the page's years (the command line allows `project.MAX_YEARS`)
MAX_DRAWS = 200  # Monte Carlo draws of one projection, unless the server is started with a lower or higher cap
MAX_PENDING = 8  # projections queued or running at once; more get RunQueueFull (HTTP 503 with Retry-After)
SOURCE = "the projection file"  # how messages name a projection file sent to the server
SCENARIO = "scenario"  # the lever scenario's column, when the projection has one
TABLES = ("years", "hospitals", "bands")  # kept as Parquet, `project`'s tables as they are
PUBLIC_YEAR_COLUMNS = ("year", "settlement_day", "pool", "point_value", "status")  # a hospital account's years

C = Column
MONEY, COUNT, POINTS, VALUE, NUMBER = (present.MONEY, present.COUNT, present.POINTS, present.POINT_VALUE,
                                       present.NUMBER)
COLUMNS: dict[str, list[tuple[str, Column]]] = {
    "years": [(SCENARIO, C("方案", "scenario")), ("year", C("年度", "year", COUNT)),
              ("settlement_day", C("结算日", "settlement day")), ("pool", C("统筹区-险种", "pool")),
              ("cases", C("病例数", "cases", COUNT)), ("points", C("总点数", "points", POINTS)),
              ("point_value", C("结算点值（元/点）", "point value (yuan per point)", VALUE)),
              ("status", C("点值状态", "point value status")), ("budget", C("预算（元）", "budget (yuan)", MONEY)),
              ("budget_available", C("可分配预算（元）", "budget available (yuan)", MONEY)),
              ("income", C("基金收入（元）", "fund income (yuan)", MONEY)),
              ("fund_payout", C("基金支付（元）", "fund payout (yuan)", MONEY)),
              ("balance", C("基金结余（元）", "fund balance (yuan)", MONEY)),
              ("months_of_capacity", C("可支付月数", "months of capacity", NUMBER))],
    "hospitals": [(SCENARIO, C("方案", "scenario")), ("year", C("年度", "year", COUNT)),
                  ("hospital_id", C("医院编码", "hospital id")), ("name", C("医院名称", "hospital name")),
                  ("level", C("医院等级", "hospital level")), ("type", C("机构类型", "hospital type")),
                  ("cases", C("病例数", "cases", COUNT)), ("cmi", C("CMI（例均病组分值）", "CMI", NUMBER)),
                  ("drifted", C("编码升级病例数", "drifted cases", COUNT)), ("points", C("点数", "points", POINTS)),
                  ("cost", C("医疗总费用（元）", "cost (yuan)", MONEY)),
                  ("payment", C("支付（元）", "payment (yuan)", MONEY)),
                  ("fund_payout", C("基金支付（元）", "fund payout (yuan)", MONEY)),
                  ("payment_ratio", C("支付/费用", "payment / cost", NUMBER))],
    "by_level": [(SCENARIO, C("方案", "scenario")), ("year", C("年度", "year", COUNT)),
                 ("level", C("医院等级", "hospital level")), ("hospitals", C("医院数", "hospitals", COUNT)),
                 ("cases", C("病例数", "cases", COUNT)), ("payment", C("支付（元）", "payment (yuan)", MONEY)),
                 ("fund_payout", C("基金支付（元）", "fund payout (yuan)", MONEY))],
    # statistics over the draws: numbers in the measure's unit (yuan, yuan per point, cases ...), not to the fen
    "bands": [(SCENARIO, C("方案", "scenario")), ("year", C("年度", "year", COUNT)), ("what", C("对象", "what")),
              ("pool", C("统筹区-险种", "pool")), ("hospital_id", C("医院编码", "hospital id")),
              ("measure", C("指标", "measure")), ("draws", C("抽样次数", "draws", COUNT)),
              ("mean", C("均值", "mean", NUMBER)), ("p10", C("P10", "p10", NUMBER)),
              ("p50", C("P50（中位数）", "p50", NUMBER)), ("p90", C("P90", "p90", NUMBER))],
}
TITLES = {"years": "各年度统筹区", "hospitals": "各年度医院", "by_level": "各年度按医院等级", "bands": "抽样区间"}
BUREAU_TABLES = ("by_level",)  # a download a hospital account gets 403 from
MONEY_KEYS = {key for table in COLUMNS.values() for key, c in table if c.kind == MONEY}


class Cancelled(Exception):
    """The projection was cancelled (POST .../cancel): it stops between two steps."""


# ------------------------------------------------------------------ the projection file


def example_text() -> str:
    """The shipped example projection file's text (scenarios/projection_example.toml; a wheel's
    dipsim/scenario_files)."""
    from dipsim.paths import scenarios_dir

    return (scenarios_dir() / EXAMPLE_FILE).read_text(encoding="utf-8")


def _names_a_path(value: str) -> bool:
    """Whether a `[projection] policy` value names more than a file beside the projection file: a folder, `..`,
    an absolute, drive or home path."""
    return any(len(p.parts) != 1 or p.is_absolute() or value.startswith(("~", ".")) or p.drive
               for p in (PurePosixPath(value), PureWindowsPath(value)))


def read_spec(text: str, years: int | None, source: str = SOURCE):
    """A projection file's text checked as `dipsim project` checks the file (`project.projection_of`), with the
    page's `years` instead of the file's: (spec, notes). InputError with every problem (the file's lines)."""
    import tomllib

    from dipsim.project import _line_of, projection_of

    if len(text) > MAX_PROJECTION_TEXT:
        raise InputError(f"{source}: {len(text):,} characters, over the limit of {MAX_PROJECTION_TEXT:,}")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{source}: not valid TOML ({exc})") from exc
    except RecursionError as exc:
        raise InputError(f"{source}: not valid TOML (nested too deeply)") from exc
    notes, problems = [], []
    meta = data.get("projection")
    policy = meta.get("policy") if isinstance(meta, dict) else None
    if policy is not None:
        where = f"[projection] policy{_line_of(text, 'projection', 'policy')}"
        if not isinstance(policy, str) or _names_a_path(policy):
            problems.append(f"{where}: {policy!r} names a file on the server: a projection sent to the workbench "
                            "runs on the region's own policy and no file it names is opened (remove the line)")
        else:
            notes.append(f"[projection] policy = {policy!r} 未读取，使用本区域的政策 / is not read: the region's own "
                         "policy is used")
    if years is not None:
        if isinstance(years, bool) or not isinstance(years, int) or not 1 <= years <= MAX_PROJECTION_YEARS:
            problems.append(f"years: a whole number from 1 to {MAX_PROJECTION_YEARS} (got {years!r})")
        elif isinstance(meta, dict):
            meta["years"] = years
    elif isinstance(meta, dict) and isinstance(meta.get("years"), int) \
            and not 1 <= meta["years"] <= MAX_PROJECTION_YEARS:
        problems.append(f"[projection] years{_line_of(text, 'projection', 'years')}: the workbench projects 1 to "
                        f"{MAX_PROJECTION_YEARS} years (got {meta['years']!r})")
    try:
        spec = projection_of(data, source, text)
    except InputError as exc:  # its problems and the ones above, said together
        problems += str(exc).split("\n  ")[1:] or [str(exc)]
    if problems:
        raise InputError(f"{source}: {len(problems)} problem(s):\n  " + "\n  ".join(problems))
    spec.policy = None  # never opened: the region's policy is used
    return spec, notes


def check_region(spec, loaded) -> None:
    """InputError naming every hospital, level, type or pool of the file the region does not have (as `project`
    checks them, before the run is queued)."""
    from dipsim.project import _check_names

    info = {r["hospital_id"]: (r["level"], r["type"])
            for r in loaded.hospitals.select(["hospital_id", "level", "type"]).to_pylist()}
    case_set = loaded.region.case_set
    _check_names(spec, info, case_set.hospitals.ids.tolist(), case_set.pools)


# ------------------------------------------------------------------ runs


class Projections:
    """Projections in a worker (one at a time), kept in DIR/projections/ (the module's notes)."""

    def __init__(self, data: DataFolder, max_draws: int = MAX_DRAWS, max_pending: int = MAX_PENDING):
        self.data, self.max_draws, self.max_pending = data, max_draws, max_pending
        self.index = data.projections
        self.pending = 0
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dipsim-projection")
        self.progress: dict[str, tuple[int, int]] = {}
        self._cancel: set[str] = set()
        self._lock = threading.Lock()
        for key, record in self.index.items():  # one the last server did not finish will not finish now
            if record.get("status") in ("queued", "running"):
                self.index.update(key, status="failed", error="the server stopped before the projection finished")

    def folder(self, projection_id: str):
        return self.data.root / "projections" / projection_id

    def submit(self, region_id: str, loaded, text: str, years: int | None, draws: int, seed: int | None,
               user, example: bool) -> tuple[str, dict]:
        """Check the file and the draws on the region and start the projection: (id, record). InputError with
        every problem when they are not valid."""
        if isinstance(draws, bool) or not isinstance(draws, int) or not 0 <= draws <= self.max_draws:
            raise InputError(f"draws: a whole number from 0 to {self.max_draws} (this server's limit; got {draws!r})")
        spec, notes = read_spec(text, years, f"the example {EXAMPLE_FILE}" if example else SOURCE)
        check_region(spec, loaded)
        from dipsim.projection.levers import lever_scenarios

        scenarios = lever_scenarios(spec, loaded.policy)  # the file and its [scenario.NAME], checked as the CLI does
        if draws and not spec.distributions:
            notes.append("文件中没有分布，各次抽样与中心预测相同 / the file gives no distribution: every draw equals "
                         "the central projection")
        with self._lock:
            if self.pending >= self.max_pending:
                raise RunQueueFull(f"{self.pending} projections are queued or running: try again shortly")
            self.pending += 1
        projection_id = new_id("projection")
        text_sha256 = hashlib.sha256(text.encode("utf-8")).hexdigest()
        record = {"region": region_id, "name": spec.name, "title": spec.title, "years": spec.years, "draws": draws,
                  "seed": spec.seed if seed is None else seed, "example": example, "notes": notes,
                  "status": "queued", "user": user.name, "created": now(), "text_sha256": text_sha256,
                  "policy_sha256": loaded.policy.digest(), "inputs_sha256": loaded.inputs_sha256,
                  "scenarios": [{"name": s.name, "title": s.title} for s in scenarios]}  # the file's order
        folder = self.folder(projection_id)
        folder.mkdir(parents=True)
        (folder / "projection.toml").write_text(text, encoding="utf-8")
        self.index.put(projection_id, record)
        self.data.audit.write(action="projection", user=user.name, role=user.role, projection=projection_id,
                              region=region_id, name=spec.name, years=spec.years, draws=draws, seed=record["seed"],
                              example=example, text_sha256=text_sha256, policy_sha256=record["policy_sha256"],
                              inputs_sha256=loaded.inputs_sha256)
        self.progress[projection_id] = (0, len(scenarios) * (spec.years + 1 + draws))
        try:
            self.executor.submit(self._run, projection_id, loaded, scenarios, draws, record["seed"])
        except BaseException:
            self._finished(projection_id, "failed", error="the projection could not be queued")
            raise
        return projection_id, record

    def cancel(self, projection_id: str) -> dict:
        """Ask a queued or running projection to stop (it stops before its next step); its record."""
        record = self.index.get(projection_id)
        if record is not None and record["status"] in ("queued", "running"):
            self._cancel.add(projection_id)
        return record or {}

    def _finished(self, projection_id: str, status: str, **fields) -> None:
        self.index.update(projection_id, status=status, finished=now(), **fields)
        self._cancel.discard(projection_id)
        with self._lock:
            self.pending -= 1

    def _run(self, projection_id: str, loaded, scenarios, draws: int, seed: int) -> None:
        from dipsim.projection.levers import project_levers

        started = time.perf_counter()
        years = scenarios[0].spec.years + 1
        order = {s.name: k for k, s in enumerate(scenarios)}
        total = len(scenarios) * (years + draws)

        def step(name: str, done: int) -> None:  # `done` steps of scenario `name` (its years, then its draws)
            if projection_id in self._cancel:
                raise Cancelled
            self.progress[projection_id] = (order[name] * (years + draws) + done, total)

        try:
            step(scenarios[0].name, 0)
            self.index.update(projection_id, status="running")
            grouped = loaded.grouped(loaded.scheme)
            # every scenario: the file's own ("baseline"), then its [scenario.NAME] (the same cases, seed and
            # draws), each one's draws after its central projection
            results = project_levers(loaded.cases, loaded.hospitals, loaded.policy, scenarios, grouped, draws=draws,
                                     seed=seed, progress=lambda name, year, _total: step(name, year + 1),
                                     draw_progress=lambda name, done, _total: step(name, years + done))
            tables = {"years": results.years, "hospitals": results.hospitals}
            if results.drawn is not None:
                tables["bands"] = results.drawn.bands
            folder = self.folder(projection_id)
            for name, frame in tables.items():
                frame.to_parquet(folder / f"{name}.parquet", index=False)
            self._finished(projection_id, "done", elapsed_s=round(time.perf_counter() - started, 3))
        except Cancelled:
            self._finished(projection_id, "cancelled")
        except Exception as exc:  # the projection's own failure: said in its status, the server goes on
            self._finished(projection_id, "failed", error=str(exc))

    def tables(self, projection_id: str) -> dict[str, pd.DataFrame]:
        """A done projection's kept tables (bands only with draws)."""
        folder = self.folder(projection_id)
        return {name: pd.read_parquet(folder / f"{name}.parquet") for name in TABLES
                if (folder / f"{name}.parquet").is_file()}

    def wait(self, timeout: float = 120.0) -> None:
        """Wait until no projection is queued or running (tests)."""
        self.index.wait(("queued", "running"), timeout, "projections")


# ------------------------------------------------------------------ what the page reads (scoped)


def _cell(key: str, value):
    """A table cell as JSON: money as yuan strings to the fen (`regions.yuan`), NaN / None as None, numpy numbers
    and dates as Python's."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    if hasattr(value, "item"):
        value = value.item()
    if key in MONEY_KEYS:
        return yuan(to_fen(float(value)))
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def _rows(frame: pd.DataFrame, keys, extra=None) -> list[dict]:
    keys = [k for k in keys if k in frame.columns]
    return [{**{k: _cell(k, v) for k, v in zip(keys, values)}, **(extra(values, keys) if extra else {})}
            for values in frame[keys].itertuples(index=False, name=None)]


def _scenario_first(frame: pd.DataFrame) -> list[str]:
    return ([SCENARIO] if SCENARIO in frame.columns else []) + [c for c in frame.columns if c != SCENARIO]


def year_rows(frame: pd.DataFrame, user) -> list[dict]:
    """Per year and pool: a hospital account its published columns (point value and status), the bureau all."""
    keys = _scenario_first(frame) if user.is_bureau else \
        [k for k in (SCENARIO, *PUBLIC_YEAR_COLUMNS) if k in frame.columns]
    return _rows(frame, keys)


def hospital_rows(frame: pd.DataFrame, names: dict, user) -> list[dict]:
    """Per year and hospital, with its name (a hospital account: its own rows only)."""
    if not user.is_bureau:
        frame = frame[frame["hospital_id"].astype(str) == user.hospital_id]
    return _rows(frame, _scenario_first(frame),
                 lambda values, keys: {"name": names.get(str(values[keys.index("hospital_id")]))})


def band_rows(frame: pd.DataFrame | None, user, hospital_measures=None) -> list[dict]:
    """The draws' bands: a hospital account the pools' point value bands and its own hospital's; the hospitals'
    of `hospital_measures` only when given."""
    if frame is None or frame.empty:
        return []
    if hospital_measures is not None:
        frame = frame[(frame["what"] != "hospital") | frame["measure"].isin(hospital_measures)]
    if not user.is_bureau:
        mine = (frame["what"] == "hospital") & (frame["hospital_id"].astype(str) == user.hospital_id)
        frame = frame[((frame["what"] == "pool") & (frame["measure"] == "point_value")) | mine]
    rows = _rows(frame, _scenario_first(frame))
    for r in rows:
        for q in ("mean", "p10", "p50", "p90"):
            if isinstance(r.get(q), float):
                r[q] = round(r[q], 6)
    return rows


def by_level(frame: pd.DataFrame) -> list[dict]:
    """Per (scenario,) year and hospital level: hospitals, cases, payment and fund payout summed in whole fen
    (`levers.level_payouts`, as comparison.csv and the figures sum them); scenarios in the file's order, levels in
    their natural order (`present.level_key`)."""
    from dipsim.projection.levers import level_payouts

    sums = level_payouts(frame)
    order = {name: k for k, name in enumerate(pd.unique(sums[SCENARIO]))} if SCENARIO in sums else {}
    rows = [{**({SCENARIO: r[SCENARIO]} if SCENARIO in sums else {}), "year": int(r["year"]),
             "level": _cell("level", r["level"]), "hospitals": int(r["hospitals"]), "cases": int(r["cases"]),
             "payment": yuan(to_fen(r["payment"])), "fund_payout": yuan(to_fen(r["fund_payout"]))}
            for r in sums.to_dict("records")]
    rows.sort(key=lambda r: (order.get(r.get(SCENARIO), 0), r["year"], present.level_key(r["level"])))
    return rows


def view(projection_id: str, record: dict, projections: Projections, names: dict, user) -> dict:
    """A projection as the page reads it: its record, progress and, when done, its tables scoped to the user."""
    done, total = projections.progress.get(projection_id, (1, 1) if record["status"] == "done" else (0, 1))
    out = {"id": projection_id, **{k: record.get(k) for k in ("region", "name", "title", "years", "draws", "seed",
                                                                "example", "notes", "status", "created",
                                                                "finished", "elapsed_s", "error",
                                                                "policy_sha256", "scenarios")},
           "progress": {"done": done, "total": total}}
    if user.is_bureau:
        out["user"] = record["user"]
    if record["status"] == "done":
        tables = projections.tables(projection_id)
        out["years_table"] = year_rows(tables["years"], user)
        out["hospitals"] = hospital_rows(tables["hospitals"], names, user)
        # the page draws the hospitals' payout paths: their other bands are in the download (bands.xlsx / .csv)
        out["bands"] = band_rows(tables.get("bands"), user, ("fund_payout",))
        if user.is_bureau:
            out["by_level"] = by_level(tables["hospitals"])
    return out


def table_rows(table: str, tables: dict[str, pd.DataFrame], names: dict, user) -> tuple[list[dict], list]:
    """One of a done projection's tables as the download has it: its rows scoped to the user, and its columns
    (the `scenario` column only when the projection has one; a hospital account's years: the published ones)."""
    if table == "years":
        rows = year_rows(tables["years"], user)
    elif table == "hospitals":
        rows = hospital_rows(tables["hospitals"], names, user)
    elif table == "bands":
        rows = band_rows(tables.get("bands"), user)
    else:
        rows = by_level(tables["hospitals"])
    present_keys = set().union(*(r.keys() for r in rows)) if rows else set()
    columns = [(k, c) for k, c in COLUMNS[table]
               if (k != SCENARIO or k in present_keys) and (user.is_bureau or table != "years"
                                                            or k in (SCENARIO, *PUBLIC_YEAR_COLUMNS))]
    return rows, columns


# ------------------------------------------------------------------ the routes


def add_projection_routes(app, server, caller, bureau) -> None:
    """The 多年预测 routes on `app` (`server`: the app's `Server`; `caller` / `bureau`: the dependencies that give
    the logged-in user, and that user when a bureau account)."""
    from typing import Annotated, Literal

    from fastapi import Depends, HTTPException, Query
    from fastapi import Path as PathParam
    from fastapi.responses import Response
    from pydantic import BaseModel, ConfigDict

    from dipsim.server import downloads
    from dipsim.server.accounts import User
    from dipsim.server.downloads import MEDIA as media
    from dipsim.server.store import PROJECTION_PATTERN, REGION_PATTERN

    region_id = Annotated[str, PathParam(pattern=REGION_PATTERN, description="a region id from GET /api/regions")]
    projection_id = Annotated[str, PathParam(pattern=PROJECTION_PATTERN,
                                             description="a projection id from POST /api/regions/{region}/projections")]
    any_user = Annotated[User, Depends(caller)]
    bureau_user = Annotated[User, Depends(bureau)]
    lang_query = Annotated[Literal["zh", "en"], Query(description="the headers' language")]
    projections: Projections = server.projections

    class ProjectionBody(BaseModel):
        """A projection to run: the shipped example (`example`: true) or a projection file's TOML `text` (data only),
        the years (1 to 10, instead of the file's), Monte Carlo draws (0 to the server's limit) and their seed."""

        model_config = ConfigDict(extra="forbid")
        example: bool = False
        text: str | None = None
        years: int | None = None
        draws: int = 0
        seed: int | None = None

    def record_of(projection: str) -> dict:
        record = projections.index.get(projection)
        if record is None:
            raise HTTPException(404, "no such projection")
        return record

    @app.get("/api/projection_example", tags=["projections"])
    def projection_example(user: any_user) -> dict:
        """The shipped example projection file (scenarios/projection_example.toml: five years, levers and fund of
        the demo region), as text: what the 多年预测 page runs when the bureau chooses it."""
        return {"name": EXAMPLE_FILE, "text": example_text()}

    @app.post("/api/regions/{region}/projections", tags=["projections"], status_code=202)
    def start_projection(body: ProjectionBody, region: region_id, user: bureau_user) -> dict:
        """Project the region several years on (bureau only): the shipped example or a projection file's text
        (checked as `dipsim project` checks the file, 422 with every problem; its [projection] policy is never
        opened, the region's policy is used), `years` 1 to 10, `draws` 0 to the server's limit; run in the
        background (follow it with GET /api/projections/{projection})."""
        if body.example == (body.text is not None):
            raise InputError(f"{SOURCE}: give either example = true or the file's text")
        if body.seed is not None and not 0 <= body.seed < 2**63:
            raise InputError(f"seed: a whole number from 0 to 2^63 - 1 (got {body.seed})")
        loaded = server.region(region)
        text = example_text() if body.example else str(body.text)
        projection, record = projections.submit(region, loaded, text, body.years, body.draws, body.seed, user,
                                                body.example)
        return view(projection, record, projections, loaded.names, user)

    @app.get("/api/regions/{region}/projections", tags=["projections"])
    def list_projections(region: region_id, user: any_user) -> dict:
        server.region(region)
        return {"projections": [{"id": k, "name": r["name"], "title": r["title"], "years": r["years"],
                                 "draws": r["draws"], "status": r["status"], "created": r["created"]}
                                for k, r in projections.index.items() if r["region"] == region]}

    @app.get("/api/projections/{projection}", tags=["projections"])
    def get_projection(projection: projection_id, user: any_user) -> dict:
        """A projection's status and progress; when done, per year and pool the point value (every account) and the
        budget, income, fund payout, balance and months of capacity (bureau), per year and hospital its cases, CMI,
        points, payment and fund payout (a hospital account: its own), the draws' bands (scoped alike) and the
        payouts by hospital level (bureau)."""
        record = record_of(projection)
        return view(projection, record, projections, server.region(record["region"]).names, user)

    @app.post("/api/projections/{projection}/cancel", tags=["projections"])
    def cancel_projection(projection: projection_id, user: bureau_user) -> dict:
        """Stop a queued or running projection before its next step (bureau only)."""
        record = record_of(projection)
        projections.cancel(projection)
        server.data.audit.write(action="cancel projection", user=user.name, role=user.role, projection=projection)
        return view(projection, record, projections, server.region(record["region"]).names, user)

    def download(table: str, extension: str):
        def get(projection: projection_id, user: any_user, lang: lang_query = "zh") -> Response:
            if table in BUREAU_TABLES and not user.is_bureau:
                raise HTTPException(403, "bureau accounts only")
            record = record_of(projection)
            if record["status"] != "done":
                raise HTTPException(409, f"the projection is {record['status']}, not done")
            rows, columns = table_rows(table, projections.tables(projection),
                                       server.region(record["region"]).names, user)
            body = downloads.table_bytes(rows, columns, TITLES[table], extension, lang)
            return Response(body, media_type=media[extension],
                            headers=downloads.attachment(projection, extension, f"projection_{table}"))

        get.__doc__ = (f"A done projection's {table} table as {extension.upper()} (Chinese headers, `?lang=en`)"
                       + ("; bureau only" if table in BUREAU_TABLES else "; scoped as GET /api/projections/{id}"))
        return get

    for table in COLUMNS:
        for extension in ("xlsx", "csv"):
            app.add_api_route(f"/api/projections/{{projection}}/{table}.{extension}", download(table, extension),
                              methods=["GET"], tags=["downloads"], response_class=Response,
                              name=f"projection_{table}_{extension}",
                              responses={200: {"content": {media[extension]: {}}}})
