"""`create_app`: the HTTP API of `dipsim serve` (FastAPI). Every route but /api/health, /api/login and the API's
own description (/api/openapi.json, /api/docs: no data) needs a bearer token, and checks the caller's scope.

Money in JSON is a string of yuan with exactly 2 decimals ("1234567.89", "-0.05"), made from whole fen
(`regions.yuan`): exact, and equal to the command line's tables to the fen. Parse it with `decimal.Decimal`.
Point values and points are JSON numbers.
"""

from __future__ import annotations

import html
import json
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from dipsim import __version__
from dipsim.io.errors import InputError
from dipsim.report import present
from dipsim.server import downloads, views
from dipsim.server.accounts import HOSPITAL_ID, Accounts, LoginLimiter, Sessions, User
from dipsim.server.downloads import MEDIA, XLSX_TYPE
from dipsim.server.projections import MAX_DRAWS, Projections, add_projection_routes
from dipsim.server.regions import LoadedRegion, build_demo_region
from dipsim.server.runs import RunQueueFull, Runs
from dipsim.server.store import REGION_PATTERN, RUN_PATTERN, UPLOAD_PATTERN, DataFolder, new_id, now
from dipsim.server.uploads import MAX_UPLOAD_BYTES, SLOT_PATTERN, UploadError, Uploads

MAX_SCENARIO_VARIANTS = 50  # a scenario file of the 政策参数 page (each variant a run): more is refused
SCENARIO_SOURCE = "the scenario file"  # how messages name a scenario file sent to the server
MAX_BODY_BYTES = 64 * 1024  # a JSON request's body; an uploaded file's has its own limit (`max_upload_bytes`)
# the one route whose body is a file, streamed to disk under the upload's limit instead of MAX_BODY_BYTES
UPLOAD_FILE_ROUTE = re.compile(r"^/api/uploads/[^/]+/files/[^/]+$")
CASE_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
DEMO_CASES, DEMO_HOSPITALS = 200_000, 100  # `dipsim demo`'s region (built once: 5 s in bench_server's run)


RegionId = Annotated[str, PathParam(pattern=REGION_PATTERN, description="a region id from GET /api/regions")]
RunId = Annotated[str, PathParam(pattern=RUN_PATTERN, description="a run id from POST /api/regions/{region}/runs")]
HospitalId = Annotated[str, PathParam(pattern=HOSPITAL_ID.pattern, description="a hospital_id of the region")]
CaseId = Annotated[str, PathParam(pattern=CASE_ID_PATTERN, description="a case_id of the region")]
MAX_COMPARE = 12  # runs side by side
CompareRuns = Annotated[str, Query(max_length=MAX_COMPARE * 20, description="run ids, comma-separated (2 to 12)")]
Lang = Annotated[Literal["zh", "en"], Query(description="the headers' language")]
# a download's sheet title
TABLE_TITLES = {"hospitals": "各医院", "point_values": "点值", "pools": "各统筹区基金支付", "by_level": "按医院等级",
                "by_type": "按机构类型", "summary": "汇总", "compare": "多方案对比",
                "compare_point_values": "多方案点值",
                "overview_by_level": "按医院等级", "overview_by_type": "按机构类型", "overview_pools": "各统筹区",
                "funds": "基金运行监测", "groups": "病组盈亏", "chain": "支付过程"}
UploadId = Annotated[str, PathParam(pattern=UPLOAD_PATTERN, description="an upload id from POST /api/uploads")]
Slot = Annotated[str, PathParam(pattern=SLOT_PATTERN, description="claims (one file or several Parquet files), "
                                                               "hospitals or policy (one each)")]


class LoginBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(max_length=64)
    password: str = Field(max_length=256)


class RunBody(BaseModel):
    """A variant: `set` as a scenario file's [[variant]] set = { path = value }, and an optional name."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    name: str | None = Field(default=None, max_length=100)
    changes: dict[str, Any] = Field(default_factory=dict, alias="set")


class ScenarioBody(BaseModel):
    """A scenario of the 政策参数 page: a title and variants, each as a scenario file's [[variant]]."""

    model_config = ConfigDict(extra="forbid")
    title: str | None = Field(default=None, max_length=200)
    variants: list[RunBody] = Field(default_factory=list)


class ScenarioText(BaseModel):
    """A scenario file's TOML text, as the user picked it (read as data only, never as a path to anything)."""

    model_config = ConfigDict(extra="forbid")
    text: str


class UploadBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(default="", max_length=100, description="the new region's title")


class BodyLimit:
    """ASGI middleware: a request body over `limit` bytes gets 413, by its Content-Length or as it streams; a PUT of
    an uploaded file (UPLOAD_FILE_ROUTE) has `upload_limit` instead (the route counts the upload's files together)."""

    def __init__(self, app, limit: int, upload_limit: int = MAX_UPLOAD_BYTES):
        self.app, self.limit, self.upload_limit = app, limit, upload_limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.upload_limit if scope.get("method") == "PUT" and UPLOAD_FILE_ROUTE.match(scope.get("path", "")) \
            else self.limit
        length = dict(scope.get("headers") or []).get(b"content-length")
        too_large = JSONResponse({"detail": f"request body over {limit:,} bytes"}, status_code=413)
        if length is not None and (not length.isdigit() or int(length) > limit):
            return await too_large(scope, receive, send)
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await too_large(scope, receive, send)


class _TooLarge(Exception):
    pass


class Server:
    """The state behind the routes: the data folder, accounts, tokens, the login limiter, loaded regions, runs."""

    def __init__(self, data_dir, clock: Callable[[], float] = time.time, token_ttl_s: float | None = None,
                 workers: int = 1, max_upload_bytes: int = MAX_UPLOAD_BYTES, max_draws: int = MAX_DRAWS):
        self.data = DataFolder(data_dir)
        self.accounts = Accounts(self.data.users_path)
        self.sessions = Sessions(clock=clock, **({"ttl_s": token_ttl_s} if token_ttl_s else {}))
        self.limiter = LoginLimiter(clock=clock)
        self.runs = Runs(self.data, workers)
        self.uploads = Uploads(self.data, self.add_region, max_upload_bytes)
        self.projections = Projections(self.data, max_draws)
        self._regions: dict[str, LoadedRegion] = {}
        self._lock = threading.Lock()
        self.demo_passwords: dict[str, str] = {}

    def add_region(self, region_id: str, record: dict, loaded: LoadedRegion) -> None:
        """A region made here (an upload), loaded already: into the index and the loaded regions."""
        with self._lock:
            self._regions[region_id] = loaded
        self.data.regions.put(region_id, record)

    def region(self, region_id: str) -> LoadedRegion:
        """The loaded region of a known id; 404 otherwise (the id is looked up in the index, never joined raw)."""
        record = self.data.regions.get(region_id)
        if record is None:
            raise HTTPException(404, "no such region")
        with self._lock:
            if region_id not in self._regions:
                self._regions[region_id] = LoadedRegion(self.data.regions.folder(region_id), record)
            return self._regions[region_id]

    def close(self) -> None:
        """Wait for the runs and uploads under way and stop their worker threads (the server's end; tests'
        teardown)."""
        self.runs.executor.shutdown(wait=True)
        self.uploads.executor.shutdown(wait=True)
        self.projections.executor.shutdown(wait=True)

    def ensure_demo(self, cases: int = DEMO_CASES, hospitals: int = DEMO_HOSPITALS) -> str:
        """The demo region (built when the data folder has none) and the demo accounts (created when absent,
        their passwords kept in `demo_passwords` to be printed once)."""
        import secrets

        found = [k for k, r in self.data.regions.items() if r.get("demo")]
        if found:
            region_id = found[0]
        else:
            region_id = new_id("region")
            folder = self.data.root / "regions" / region_id
            record = build_demo_region(folder, cases, hospitals)
            self.data.regions.put(region_id, {**record, "created": now()})
        loaded = self.region(region_id)
        if not self.accounts.names():
            hospital = _demo_hospital(loaded)
            for name, role, hospital_id in (("bureau", "bureau", None), ("hospital", "hospital", hospital)):
                password = secrets.token_urlsafe(12)
                self.accounts.add(name, password, role, hospital_id)
                self.demo_passwords[name] = password
                self.data.audit.write(action="add user", user=name, role=role, hospital_id=hospital_id, by="--demo")
        return region_id


def current_user(request: Request) -> User:
    """The caller of a request by its bearer token: 401 without a valid, unexpired one."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    sessions = request.app.state.server.sessions
    user = sessions.user(token.strip()) if scheme.lower() == "bearer" and token.strip() else None
    if user is None:
        raise HTTPException(401, "log in first: POST /api/login, then Authorization: Bearer TOKEN",
                            headers={"WWW-Authenticate": "Bearer"})
    return user


Caller = Annotated[User, Depends(current_user)]


def bureau_user(user: Caller) -> User:
    """The caller, when a bureau account: 403 otherwise."""
    if not user.is_bureau:
        raise HTTPException(403, "bureau accounts only")
    return user


Bureau = Annotated[User, Depends(bureau_user)]


def _demo_hospital(loaded: LoadedRegion) -> str:
    """The demo hospital account's hospital: the first TCM hospital with cases (the TCM bonus moves its money)."""
    table = loaded.hospitals.to_pandas()
    tcm = table[(table["type"] == "中医") & table["hospital_id"].isin(loaded.hospital_ids)]
    return str((tcm if len(tcm) else table)["hospital_id"].iloc[0])


def _policy_values(values: dict, user: User) -> dict:
    """What of a policy's values a user may read: a hospital sees coefficient.hospital only for itself (in every
    dated value too: { "2025-01-01" = { H0001 = 1.05 } })."""
    if user.is_bureau or "coefficient.hospital" not in values:
        return values

    def own(table):
        return {k: v for k, v in table.items() if k == user.hospital_id} if isinstance(table, dict) else {}

    value = values["coefficient.hospital"]
    dated = isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()) and \
        all(_is_date(k) for k in value)
    return {**values, "coefficient.hospital": {day: own(v) for day, v in value.items()} if dated else own(value)}


def _is_date(text) -> bool:
    import datetime as dt

    try:
        dt.date.fromisoformat(str(text))
    except ValueError:
        return False
    return True


def _scenario_toml(region: str, mode: str, title: str | None, variants: list[dict]) -> str:
    """A scenario file as `dipsim scenarios run FILE.toml` reads it: [scenario] with baseline = "policy.toml" (the
    region's baseline, GET /api/regions/{region}/policy.toml, saved beside it) and one [[variant]] per variant.
    Written by tomli_w: no value is formatted into TOML by hand."""
    import tomli_w

    from dipsim.server.regions import CASES_DIR, CATALOG_DIR, HOSPITALS_FILE, POLICY_FILE

    data = {"scenario": {"name": "workbench", **({"title": title} if title else {}), "baseline": POLICY_FILE},
            "variant": variants}
    try:
        body = tomli_w.dumps(data)
    except (TypeError, ValueError) as exc:  # checked before: a value TOML cannot hold would have been refused
        raise InputError(f"{SCENARIO_SOURCE}: {exc}") from exc
    catalog = f" --catalog DIR/regions/{region}/{CATALOG_DIR}" if mode == "dip" else ""
    return (f"# dipsim scenario file, saved from the workbench's 政策参数 page for region {region}.\n"
            f"# baseline = \"{POLICY_FILE}\" is the region's baseline policy: download it (GET "
            f"/api/regions/{region}/policy.toml) into the folder of this file.\n"
            f"# Run it: dipsim scenarios run THIS.toml --cases DIR/regions/{region}/{CASES_DIR.as_posix()} "
            f"--hospitals DIR/regions/{region}/{HOSPITALS_FILE}{catalog}\n"
            f"# (DIR: the server's data folder)\n\n" + body)


def create_app(data_dir, demo: bool = False, demo_cases: int = DEMO_CASES, demo_hospitals: int = DEMO_HOSPITALS,
               clock: Callable[[], float] = time.time, token_ttl_s: float | None = None, workers: int = 1,
               max_body_bytes: int = MAX_BODY_BYTES, max_upload_bytes: int = MAX_UPLOAD_BYTES,
               max_draws: int = MAX_DRAWS) -> FastAPI:
    """The API over the data folder `data_dir`; `demo`: build the demo region (and accounts) when absent. The
    Server is `app.state.server` (its `demo_passwords` hold the demo accounts' passwords when created now).
    `max_draws`: the most Monte Carlo draws of one projection (多年预测)."""
    server = Server(Path(data_dir), clock, token_ttl_s, workers, max_upload_bytes, max_draws)
    if demo:
        server.ensure_demo(demo_cases, demo_hospitals)
    app = FastAPI(title="dipsim API", version=__version__, docs_url=None, redoc_url=None,
                  openapi_url="/api/openapi.json",
                  description="DIP/DRG hospital-payment what-ifs. Money: strings of yuan with 2 decimals. "
                              "Authenticate with POST /api/login, then `Authorization: Bearer TOKEN`.")
    app.state.server = server
    app.add_middleware(BodyLimit, limit=max_body_bytes, upload_limit=max_upload_bytes)

    @app.middleware("http")
    async def headers(request: Request, call_next):
        response = await call_next(request)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Cache-Control"] = "no-store"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    @app.exception_handler(RunQueueFull)
    async def queue_full(request: Request, exc: RunQueueFull):
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "1"})

    @app.exception_handler(UploadError)
    async def upload_error(request: Request, exc: UploadError):
        return JSONResponse({"detail": str(exc)}, status_code=exc.status,
                            headers={"Retry-After": "5"} if exc.status == 503 else None)

    @app.exception_handler(InputError)
    async def input_error(request: Request, exc: InputError):
        problems = getattr(exc, "problems", None) or str(exc).split("\n  ")[1:] or [str(exc)]
        return JSONResponse({"detail": {"message": str(exc), "problems": problems}}, status_code=422)

    # ------------------------------------------------------------ open routes

    @app.get("/api/health", tags=["open"])
    def health() -> dict:
        return {"status": "ok", "version": __version__}

    @app.post("/api/login", tags=["open"])
    def login(body: LoginBody, request: Request) -> dict:
        """A bearer token for a user name and password. 5 failed logins a minute for a name, or from an address,
        and logins for it get 429 until the minute has passed."""
        address = request.client.host if request.client else "unknown"
        keys = [("user", body.username), ("address", address)]
        wait = server.limiter.retry_after(keys)
        if wait:
            raise HTTPException(429, "too many failed logins: try again later", headers={"Retry-After": str(wait)})
        user = server.accounts.verify(body.username, body.password)
        if user is None:
            server.limiter.failed(keys)
            server.data.audit.write(action="login failed", user=body.username, address=address)
            raise HTTPException(401, "wrong user name or password")
        token, expires = server.sessions.issue(user)
        server.data.audit.write(action="login", user=user.name, role=user.role, address=address)
        return {"token": token, "token_type": "bearer", "expires_in": round(expires - server.sessions.clock()),
                "user": user.public()}

    @app.get("/api/docs", tags=["open"], response_class=HTMLResponse)
    def docs() -> str:
        """The API's routes as a plain page (no script, nothing loaded from elsewhere); the full description is
        /api/openapi.json."""
        spec = app.openapi()
        rows = "".join(
            f"<tr><td>{html.escape(method.upper())}</td><td><code>{html.escape(path)}</code></td>"
            f"<td>{html.escape(op.get('summary', ''))}</td><td>{html.escape(op.get('description', ''))}</td></tr>"
            for path, ops in spec["paths"].items() for method, op in ops.items())
        return ("<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>dipsim API</title>"
                "<h1>dipsim API</h1><p>Every route but health, login and this description needs "
                "<code>Authorization: Bearer TOKEN</code> (POST /api/login). The OpenAPI document: "
                "<a href=\"/api/openapi.json\">/api/openapi.json</a>.</p>"
                f"<table border=\"1\"><tr><th>method</th><th>path</th><th>summary</th><th>what</th></tr>{rows}"
                "</table></html>")

    # ------------------------------------------------------------ accounts

    @app.post("/api/logout", tags=["accounts"])
    def logout(request: Request, user: Caller) -> dict:
        server.sessions.revoke(request.headers["authorization"].partition(" ")[2].strip())
        server.data.audit.write(action="logout", user=user.name, role=user.role)
        return {"status": "logged out"}

    @app.get("/api/me", tags=["accounts"])
    def me(user: Caller) -> dict:
        return user.public()

    @app.get("/api/audit", tags=["accounts"])
    def audit(user: Bureau, limit: int = 1000) -> dict:
        """The audit log, newest last (bureau only): logins, runs (who, when, inputs' and policies' sha256)."""
        return {"entries": server.data.audit.read(max(1, min(limit, 100_000)))}

    # ------------------------------------------------------------ regions

    @app.get("/api/regions", tags=["regions"])
    def regions(user: Caller) -> dict:
        return {"regions": [{"id": k, "title": r.get("title"), "mode": r.get("mode"), "cases": r.get("cases"),
                             "created": r.get("created")} for k, r in server.data.regions.items()]}

    @app.get("/api/regions/{region}", tags=["regions"])
    def region_overview(region: RegionId, user: Caller) -> dict:
        """区域概览: cases, hospitals by level and type, pools with their budget and baseline point value."""
        return {"id": region, **server.region(region).overview()}

    @app.get("/api/regions/{region}/parameters", tags=["regions"])
    def parameters(region: RegionId, user: Caller) -> dict:
        """The parameter registry (dipsim/data/policy_parameters.toml) with the baseline's values."""
        from dipsim.policy import PARAMETERS

        loaded = server.region(region)
        values = _policy_values({p: loaded.policy.values.get(p, PARAMETERS[p].default) for p in PARAMETERS}, user)
        items = [{"path": p.path, "section": p.path.split(".")[0], "label": p.label, "label_en": p.label_en,
                  "type": p.type, "unit": p.unit, "doc": p.doc, "doc_zh": p.doc_zh, "source": p.source,
                  "default": p.default, "min": p.min, "max": p.max, "above": p.above, "below": p.below,
                  "choices": list(p.choices), "value": values[p.path]} for p in PARAMETERS.values()]
        return json.loads(json.dumps({"baseline": loaded.policy.name, "policy_sha256": loaded.policy.digest(),
                                      "parameters": items}, default=str))

    @app.post("/api/regions/{region}/scenario.toml", tags=["regions"], response_class=Response,
              responses={200: {"content": {"application/toml": {}}, "description": "the scenario file"}})
    def scenario_file(body: ScenarioBody, region: RegionId, user: Bureau) -> Response:
        """The 政策参数 page's variants as a scenario file (bureau only): checked as `dipsim scenarios run` checks
        a scenario file, on the region's baseline, with its messages (422 with every problem); the file names the
        baseline "policy.toml" (GET /api/regions/{region}/policy.toml) and runs under `dipsim scenarios run`."""
        from dipsim.scenarios import scenarios_of

        loaded = server.region(region)
        variants = [{**({"name": v.name} if v.name else {}), "set": v.changes} for v in body.variants]
        scenarios_of({"variant": variants}, SCENARIO_SOURCE, loaded.policy, MAX_SCENARIO_VARIANTS, raise_hint="")
        return Response(_scenario_toml(region, loaded.mode, body.title, variants),
                        media_type="application/toml; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="scenario_{region}.toml"'})

    @app.get("/api/regions/{region}/policy.toml", tags=["regions"], response_class=Response,
             responses={200: {"content": {"application/toml": {}}, "description": "the baseline policy file"}})
    def policy_file(region: RegionId, user: Bureau) -> Response:
        """The region's baseline policy file as stored (bureau only: it holds every hospital's coefficient): the
        `baseline = "policy.toml"` of a scenario file saved from the 政策参数 page."""
        from dipsim.server.regions import POLICY_FILE

        loaded = server.region(region)
        return Response((loaded.folder / POLICY_FILE).read_bytes(), media_type="application/toml; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{POLICY_FILE}"'})

    @app.post("/api/regions/{region}/scenario/parse", tags=["regions"])
    def scenario_parse(body: ScenarioText, region: RegionId, user: Caller) -> dict:
        """A scenario file's text (`{"text": "..."}`, at most the body limit) read as data (TOML, nothing in it
        run or opened) and checked as `dipsim scenarios run` checks it, on the region's baseline: its title and
        variants (a [sweep] expanded), for the 政策参数 page's form. Its `[scenario] baseline` is not read (the
        region's baseline is used; `notes` says so). Not TOML: 422 with the parser's message and line."""
        import tomllib

        from dipsim.scenarios import scenarios_of

        loaded = server.region(region)
        try:
            data = tomllib.loads(body.text)
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"{SCENARIO_SOURCE}: not valid TOML ({exc})") from exc
        except RecursionError as exc:
            raise InputError(f"{SCENARIO_SOURCE}: not valid TOML (nested too deeply)") from exc
        scenarios = scenarios_of(data, SCENARIO_SOURCE, loaded.policy, MAX_SCENARIO_VARIANTS, raise_hint="")
        meta = data.get("scenario", {})
        swept = sum(not v.named for v in scenarios.variants) if data.get("sweep") else 0
        notes = []
        if "baseline" in meta:
            notes.append(f"[scenario] baseline = {meta['baseline']!r} is not read: the variants are checked and run "
                         "on this region's baseline policy")
        if swept:
            notes.append(f"the [sweep] is expanded into {swept} variant(s)")
        answer = {"name": scenarios.name, "title": scenarios.title, "notes": notes,
                  "baseline_ignored": meta.get("baseline"), "sweep_variants": swept,
                  "variants": [{"name": v.name, "named": v.named, "set": v.changes} for v in scenarios.variants]}
        return json.loads(json.dumps(answer, default=str))

    @app.get("/api/regions/{region}/hospitals/{hospital}", tags=["regions"])
    def hospital_groups(region: RegionId, hospital: HospitalId,
                        user: Caller) -> dict:
        """病组盈亏 of one hospital under the baseline, the largest loss first (a hospital account: its own only)."""
        if not user.is_bureau and hospital != user.hospital_id:
            raise HTTPException(403, "a hospital account sees its own hospital only")
        loaded = server.region(region)
        if hospital not in loaded.hospital_ids:
            raise HTTPException(404, "no such hospital with cases in this region")
        return loaded.hospital_groups(hospital)

    @app.get("/api/regions/{region}/cases/{case_id}/explain", tags=["regions"])
    def explain(region: RegionId, case_id: CaseId,
                user: Caller) -> dict:
        """One case's payment chain under the baseline, step by step (`dipsim explain --case-id`)."""
        loaded = server.region(region)
        hospital = loaded.case_hospital(case_id)
        if hospital is None or (not user.is_bureau and hospital != user.hospital_id):
            raise HTTPException(404, "no such case")  # the same answer for another hospital's case
        return {"case_id": case_id, "hospital_id": hospital, "text": loaded.explain(case_id)}

    # ------------------------------------------------------------ runs

    def run_view(run_id: str, record: dict, user: User) -> dict:
        done, total = server.runs.progress.get(run_id, (2, 2) if record["status"] == "done" else (0, 2))
        view = {"id": run_id, "region": record["region"], "name": record["name"],
                "set": _policy_values(record["set"], user), "status": record["status"],
                "progress": {"done": done, "total": total}, "created": record["created"],
                "finished": record.get("finished"), "elapsed_s": record.get("elapsed_s"),
                "error": record.get("error"), "policy_sha256": record["policy_sha256"],
                "baseline_sha256": record["baseline_sha256"]}
        if user.is_bureau:
            view["user"] = record["user"]
        result = server.runs.result(run_id) if record["status"] == "done" else None
        if result is not None:
            view["point_values"] = views.point_values(result)  # published: every account reads them
            if user.is_bureau:  # the aggregates over hospitals: the bureau's
                view["pools"] = views.pools(result)
                view["summary"] = {s.pop("key"): s for s in views.summary(result, record["name"])}
                view["by_level"] = views.by_level(result)
                view["by_type"] = views.by_type(result)
        return view

    def run_record(run_id: str) -> dict:
        record = server.data.runs.get(run_id)
        if record is None:
            raise HTTPException(404, "no such run")
        return record

    @app.post("/api/regions/{region}/runs", tags=["runs"], status_code=202)
    def start_run(body: RunBody, region: RegionId, user: Bureau) -> dict:
        """Run a variant (`set`: { "coefficient.tcm_hospital_bonus": 0.1, ... }, checked as a scenario file's
        [[variant]] is, with the same messages) against the region's baseline, in the worker pool (bureau only)."""
        loaded = server.region(region)
        run_id, record = server.runs.submit(region, loaded, body.name, body.changes, user)
        return run_view(run_id, record, user)

    @app.get("/api/regions/{region}/runs", tags=["runs"])
    def list_runs(region: RegionId, user: Caller) -> dict:
        server.region(region)
        return {"runs": [{"id": k, "name": r["name"], "status": r["status"], "created": r["created"]}
                         for k, r in server.data.runs.items() if r["region"] == region]}

    @app.get("/api/runs/{run}", tags=["runs"])
    def get_run(run: RunId, user: Caller) -> dict:
        """A run's status and progress; when done its point values (and for the bureau, payouts and summary)."""
        return run_view(run, run_record(run), user)

    def hospital_rows(run: str, user: User) -> tuple[dict, list[dict]]:
        """A done run's record and its hospital rows the user may read (a hospital account: its own only); money
        as yuan strings, exact. 409 while the run is not done."""
        record = run_record(run)
        result = server.runs.result(run) if record["status"] == "done" else None
        if result is None:
            raise HTTPException(409, f"the run is {record['status']}, not done")
        rows = views.hospital_rows(result, server.region(record["region"]).names, user)
        return record, rows

    def done_result(run: str) -> tuple[dict, dict]:
        """A done run's record and kept result; 404 / 409 otherwise."""
        record = run_record(run)
        result = server.runs.result(run) if record["status"] == "done" else None
        if result is None:
            raise HTTPException(409, f"the run is {record['status']}, not done")
        return record, result

    def run_download(table: str, extension: str):
        """GET /api/runs/{run}/TABLE.xlsx|csv: one of a run's tables (`views.RUN_TABLES`) as a file; the
        aggregates over hospitals (`views.BUREAU_RUN_TABLES`) for the bureau only, the hospital table scoped."""

        def download(run: RunId, user: Caller, lang: Lang = "zh") -> Response:
            if table in views.BUREAU_RUN_TABLES and not user.is_bureau:
                raise HTTPException(403, "bureau accounts only")
            if table == "hospitals":
                _, rows = hospital_rows(run, user)
                body = (downloads.hospitals_xlsx if extension == "xlsx" else downloads.hospitals_csv)(rows, lang)
            else:
                record, result = done_result(run)
                rows = views.run_table(table, result, record["name"], server.region(record["region"]).names, user)
                body = downloads.table_bytes(rows, views.COLUMNS[table], TABLE_TITLES[table], extension, lang)
            return Response(body, media_type=MEDIA[extension], headers=downloads.attachment(run, extension, table))

        download.__doc__ = (f"A run's {table} table as {extension.upper()} (Chinese headers, money in yuan to the "
                            "fen, text never a formula)" + ("; bureau only" if table in views.BUREAU_RUN_TABLES
                                                            else "; a hospital account: its own rows"))
        return download

    for table in views.RUN_TABLES:
        for extension in ("xlsx", "csv"):
            app.add_api_route(f"/api/runs/{{run}}/{table}.{extension}", run_download(table, extension),
                              methods=["GET"], tags=["downloads"], response_class=Response,
                              name=f"run_{table}_{extension}",
                              responses={200: {"content": {MEDIA[extension]: {}}}})

    @app.get("/api/runs/{run}/hospitals", tags=["runs"])
    def run_hospitals(run: RunId, user: Caller) -> dict:
        """The hospital table: baseline and variant fund payout, change in yuan and % (a hospital: its own row)."""
        record, rows = hospital_rows(run, user)
        return {"run": run, "name": record["name"], "hospitals": rows}

    def compare_view(region: str, runs: str, user: User) -> dict:
        ids = list(dict.fromkeys(r.strip() for r in runs.split(",") if r.strip()))
        if not 2 <= len(ids) <= MAX_COMPARE or not all(re.fullmatch(RUN_PATTERN, r) for r in ids):
            raise HTTPException(422, f"runs: 2 to {MAX_COMPARE} run ids, comma-separated")
        loaded = server.region(region)
        chosen = []
        for run_id in ids:
            record, result = done_result(run_id)
            if record["region"] != region:
                raise HTTPException(404, "no such run in this region")
            chosen.append((run_id, record, result))
        if len({record["baseline_sha256"] for _, record, _ in chosen}) > 1:
            raise HTTPException(409, "the runs were made on different baselines")
        view = views.compare(chosen, loaded.names, user)
        for entry, (_, record, _) in zip(view["runs"], chosen):
            entry["set"] = _policy_values(record["set"], user)
        return view

    @app.get("/api/regions/{region}/compare", tags=["runs"])
    def compare_runs(region: RegionId, user: Caller, runs: CompareRuns) -> dict:
        """Several done runs of the region side by side (runs=ID,ID,...: 2 to 12, on one baseline): per pool the
        point values, per (hospital, pool) the baseline payout and each run's payout, change in yuan and % (a
        hospital account: its own rows)."""
        return compare_view(region, runs, user)

    def compare_download(table: str, extension: str):
        """A download of the compared runs: "compare" (the hospital table) or "compare_point_values"."""
        def download(region: RegionId, user: Caller, runs: CompareRuns, lang: Lang = "zh") -> Response:
            hospital_rows, hospital_columns, value_rows, value_columns = views.compare_flat(
                compare_view(region, runs, user))
            rows, columns = (hospital_rows, hospital_columns) if table == "compare" else (value_rows, value_columns)
            body = downloads.table_bytes(rows, columns, TABLE_TITLES[table], extension, lang)
            return Response(body, media_type=MEDIA[extension], headers=downloads.attachment(region, extension, table))

        download.__doc__ = (f"The compared runs' hospital table as {extension.upper()} (a hospital: its own rows)"
                            if table == "compare" else
                            f"The compared runs' point values as {extension.upper()} (published)")
        return download

    @app.get("/api/regions/{region}/funds", tags=["regions"])
    def funds(region: RegionId, user: Bureau) -> dict:
        """The baseline's fund monitoring by pool and month (`monitor.fund_monitor`; bureau only): claims, the
        budget to date, execution and its warning / alert level, the projected point value and balance."""
        return {"region": region, "funds": server.region(region).funds()}

    @app.get("/api/regions/{region}/hospitals/{hospital}/chain", tags=["regions"])
    def hospital_chain(region: RegionId, hospital: HospitalId, user: Caller) -> dict:
        """One hospital's payment chain under the baseline, per pool: its points after each case step, the
        special-case review, the point value and the money of settlement (the baseline's settlement files, to the
        fen; a hospital account: its own only)."""
        return own_hospital(region, hospital, user).hospital_chain(hospital)

    def own_hospital(region: str, hospital: str, user: User) -> LoadedRegion:
        if not user.is_bureau and hospital != user.hospital_id:
            raise HTTPException(403, "a hospital account sees its own hospital only")
        loaded = server.region(region)
        if hospital not in loaded.hospital_ids:
            raise HTTPException(404, "no such hospital with cases in this region")
        return loaded

    def region_download(table: str, extension: str):
        bureau_only = table == "funds"

        def download(region: RegionId, user: Caller, lang: Lang = "zh") -> Response:
            if bureau_only and not user.is_bureau:
                raise HTTPException(403, "bureau accounts only")
            loaded = server.region(region)
            if table == "funds":
                rows = loaded.funds()
            else:
                overview = loaded.overview()
                rows = overview[table]
                if table == "by_level":
                    rows = sorted(rows, key=lambda r: present.level_key(r["level"]))
            name = "funds" if table == "funds" else f"overview_{table}"
            body = downloads.table_bytes(rows, views.COLUMNS[name], TABLE_TITLES[name], extension, lang)
            return Response(body, media_type=MEDIA[extension], headers=downloads.attachment(region, extension, name))

        download.__doc__ = f"The region's {table} table as {extension.upper()}" + ("; bureau only" if bureau_only
                                                                                 else "")
        return download

    def hospital_download(table: str, extension: str):
        def download(region: RegionId, hospital: HospitalId, user: Caller, lang: Lang = "zh") -> Response:
            loaded = own_hospital(region, hospital, user)
            if table == "groups":
                rows = loaded.hospital_groups(hospital)["groups"]
            else:
                rows = views.chain_rows(loaded.hospital_chain(hospital), lang)
            body = downloads.table_bytes(rows, views.COLUMNS[table], TABLE_TITLES[table], extension, lang)
            return Response(body, media_type=MEDIA[extension],
                            headers=downloads.attachment(hospital, extension, table))

        download.__doc__ = f"One hospital's {table} table as {extension.upper()} (a hospital account: its own only)"
        return download

    for extension in ("xlsx", "csv"):
        get: dict[str, Any] = {"methods": ["GET"], "tags": ["downloads"], "response_class": Response,
               "responses": {200: {"content": {MEDIA[extension]: {}}}}}
        for table in ("compare", "compare_point_values"):
            app.add_api_route(f"/api/regions/{{region}}/{table}.{extension}", compare_download(table, extension),
                              name=f"{table}_{extension}", **get)
        for table in ("by_level", "by_type", "pools", "funds"):
            app.add_api_route(f"/api/regions/{{region}}/{table}.{extension}", region_download(table, extension),
                              name=f"region_{table}_{extension}", **get)
        for table in ("groups", "chain"):
            app.add_api_route(f"/api/regions/{{region}}/hospitals/{{hospital}}/{table}.{extension}",
                              hospital_download(table, extension), name=f"hospital_{table}_{extension}", **get)
    # ------------------------------------------------------------ uploads (bureau only)

    @app.post("/api/uploads", tags=["uploads"], status_code=201)
    def create_upload(body: UploadBody, user: Bureau) -> dict:
        """A new upload: then PUT its files (claims, hospitals, optionally a policy TOML), then POST .../process."""
        upload_id, _ = server.uploads.create(body.title, user)
        return server.uploads.view(upload_id)

    @app.get("/api/uploads", tags=["uploads"])
    def list_uploads(user: Bureau) -> dict:
        return {"uploads": [{"id": k, "title": r["title"], "status": r["status"], "created": r["created"],
                             "user": r["user"], "region": r.get("region")} for k, r in server.uploads.index.items()]}

    @app.put("/api/uploads/{upload}/files/{slot}", tags=["uploads"],
             openapi_extra={"requestBody": {"required": True, "description": "the file's bytes, as they are",
                                            "content": {"application/octet-stream": {"schema": {
                                                "type": "string", "format": "binary"}}}}})
    async def put_upload_file(upload: UploadId, slot: Slot, request: Request, user: Bureau,
                              name: Annotated[str, Query(min_length=1, max_length=255,
                                                         description="the file's original name (data only: its "
                                                                     "suffix picks the reader)")]) -> dict:
        """One file of the upload as the raw request body, streamed to disk under a generated name (the original
        name is kept as data). Claims: .csv/.txt/.tsv (UTF-8 or GB18030), .xlsx, .parquet (several Parquet files
        are read as one folder); hospitals: .csv, .xlsx, .parquet (a second replaces the first); policy: .toml.
        413 when the upload's files together pass the server's limit (dipsim serve --max-upload-mb)."""
        length = request.headers.get("content-length")
        return await server.uploads.receive(upload, slot, name, request.stream(), user,
                                            int(length) if length and length.isdigit() else None)

    @app.post("/api/uploads/{upload}/process", tags=["uploads"], status_code=202)
    def process_upload(upload: UploadId, user: Bureau) -> dict:
        """Make a region of the upload's files off the event loop, through the command line's loader (validate,
        hospitals, catalogue; the shipped DIP baseline with budgets of 60% of cost when no policy was sent).
        Follow it with GET /api/uploads/{upload}."""
        return server.uploads.submit(upload, user)

    @app.get("/api/uploads/{upload}", tags=["uploads"])
    def get_upload(upload: UploadId, user: Bureau) -> dict:
        """An upload's files (original names, bytes, sha256), status, step and rows read so far; when processed,
        the counts (read = accepted + rejected), the warnings, the loader's error or the new region's id."""
        return server.uploads.view(upload)

    @app.get("/api/uploads/{upload}/rejects", tags=["uploads"])
    def upload_rejects(upload: UploadId, user: Bureau, limit: int = 100) -> dict:
        """The first `limit` lines of the rejects table (file, row, case_id, field, value, reason) and their total;
        a text over 1,000 characters is cut there, with … (the downloads hold it whole)."""
        table = server.uploads.rejects(upload)
        rows = table.slice(0, max(0, min(limit, 10_000))).to_pylist()
        return {"total_lines": table.num_rows,
                "rows": [{k: v[:1000] + "…" if isinstance(v, str) and len(v) > 1000 else v for k, v in r.items()}
                         for r in rows]}

    @app.get("/api/uploads/{upload}/rejects.csv", tags=["uploads"], response_class=Response,
             responses={200: {"content": {"text/csv": {}}, "description": "the rejects table as CSV"}})
    def upload_rejects_csv(upload: UploadId, user: Bureau) -> Response:
        """Every line of the rejects table as CSV: UTF-8 with a BOM, Chinese headers, formula-like text prefixed
        with '."""
        from dipsim.server.uploads import rejects_csv

        return Response(rejects_csv(server.uploads.rejects(upload)), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="rejects_{upload}.csv"'})

    @app.get("/api/uploads/{upload}/rejects.xlsx", tags=["uploads"], response_class=Response,
             responses={200: {"content": {XLSX_TYPE: {}}, "description": "the rejects table as Excel"}})
    def upload_rejects_xlsx(upload: UploadId, user: Bureau) -> Response:
        """Every line of the rejects table as Excel (text cells are text, never formulas); 409 over a sheet's
        1,048,575 rows (take the CSV)."""
        from dipsim.server.uploads import rejects_xlsx

        try:
            content = rejects_xlsx(server.uploads.rejects(upload))
        except ValueError as exc:
            raise HTTPException(409, str(exc)) from None
        return Response(content, media_type=XLSX_TYPE,
                        headers={"Content-Disposition": f'attachment; filename="rejects_{upload}.xlsx"'})

    # ------------------------------------------------------------ projections (多年预测: `projections`)

    add_projection_routes(app, server, current_user, bureau_user)

    # ------------------------------------------------------------ the browser workbench (pages at /app/, open)

    from dipsim.server.workbench import add_workbench

    add_workbench(app, current_user)
    return app
