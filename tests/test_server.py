"""`dipsim serve` (the HTTP API): accounts and tokens, 401 on every route without a token, a hospital account's
scope over every route of the route table, login rate limiting, body limits, and a run's payouts equal to
`dipsim scenarios run` on the same region and variant, to the fen. Skipped without the server extra."""

from __future__ import annotations

import csv
import json
import re
from decimal import Decimal

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("argon2")
pytest.importorskip("httpx")

from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from dipsim.cli import main
from dipsim.server import create_app
from dipsim.server.regions import CASES_DIR, CATALOG_DIR, HOSPITALS_FILE, POLICY_FILE

BUREAU_TABLES = ("pools", "by_level", "by_type", "summary")  # a run's aggregates over hospitals
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
OPEN = {"/api/health", "/api/login", "/api/docs", "/api/openapi.json",  # no token needed; no data in them
        "/"}  # a redirect to the workbench's pages (/app/, static files: the same for everyone, no data)
# routes a hospital account gets 403 from, whatever it asks: the bureau's writes and what holds every hospital's data
BUREAU_ONLY = {("POST", "/api/regions/{region}/runs"), ("GET", "/api/audit"),
               ("POST", "/api/regions/{region}/scenario.toml"),  # the 政策参数 page's scenario files
               ("GET", "/api/regions/{region}/policy.toml"),  # every hospital's coefficient is in it
               ("POST", "/api/regions/{region}/projections"),  # 多年预测: the bureau runs projections ...
               ("POST", "/api/projections/{projection}/cancel"),  # ... and cancels them
               ("GET", "/api/projections/{projection}/by_level.xlsx"),  # payouts summed over hospitals
               ("GET", "/api/projections/{projection}/by_level.csv")}
VARIANT = {"coefficient.tcm_hospital_bonus": 0.1, "coefficient.hospital": {"H0001": 1.05}}
VARIANT_TOML = '{ "coefficient.tcm_hospital_bonus" = 0.1, "coefficient.hospital" = { "H0001" = 1.05 } }'
# a second run, with special-case review (特例单议) on: its outcome is in the run's summary
REVIEW_NAME = "特例单议 + 中医加成 20%"
REVIEW = {"review.in_effect": True, "coefficient.tcm_hospital_bonus": 0.2}
REVIEW_TOML = '{ "review.in_effect" = true, "coefficient.tcm_hospital_bonus" = 0.2 }'
# the query a route needs, by its path (the route-table tests fill it as they fill the path)
QUERIES = {"/api/regions/{region}/compare": "?runs={run},{run2}",
           "/api/regions/{region}/compare.xlsx": "?runs={run},{run2}",
           "/api/regions/{region}/compare.csv": "?runs={run},{run2}",
           "/api/regions/{region}/compare_point_values.xlsx": "?runs={run},{run2}",
           "/api/regions/{region}/compare_point_values.csv": "?runs={run},{run2}"}


class Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo region (small) in a data folder, the two demo accounts logged in, and one run of VARIANT done."""
    data = tmp_path_factory.mktemp("serve") / "data"
    app = create_app(data, demo=True, demo_cases=3000, demo_hospitals=12)
    server = app.state.server
    client = TestClient(app)
    tokens = {}
    for name, password in server.demo_passwords.items():
        answer = client.post("/api/login", json={"username": name, "password": password})
        assert answer.status_code == 200, answer.text
        tokens[name] = {"Authorization": f"Bearer {answer.json()['token']}"}
    region = client.get("/api/regions", headers=tokens["bureau"]).json()["regions"][0]["id"]
    run = client.post(f"/api/regions/{region}/runs", headers=tokens["bureau"], json={"name": "中医加成 10%",
                                                                                       "set": VARIANT})
    assert run.status_code == 202, run.text
    second = client.post(f"/api/regions/{region}/runs", headers=tokens["bureau"], json={"name": REVIEW_NAME,
                                                                                          "set": REVIEW})
    assert second.status_code == 202, second.text
    server.runs.wait()
    hospital = server.accounts.get("hospital").hospital_id
    upload = client.post("/api/uploads", headers=tokens["bureau"], json={"title": "an upload"})  # for {upload}
    assert upload.status_code == 201, upload.text
    projection = client.post(f"/api/regions/{region}/projections", headers=tokens["bureau"],  # for {projection}
                             json={"example": True, "years": 1, "draws": 2})
    assert projection.status_code == 202, projection.text
    server.projections.wait()
    return {"app": app, "server": server, "client": client, "tokens": tokens, "region": region, "data": data,
            "run": run.json()["id"], "run2": second.json()["id"], "hospital": hospital,
            "folder": data / "regions" / region, "upload": upload.json()["id"],
            "projection": projection.json()["id"]}


def _yuan_fen(text) -> int:
    """A yuan amount (text with at most 2 decimals) as whole fen, exactly."""
    value = Decimal(str(text)) * 100
    assert value == value.to_integral_value(), text
    return int(value)


def _filled(path: str, values: dict) -> str:
    """The route's path with its parameters filled from `values`, and its query (`QUERIES`) when it needs one."""
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path + QUERIES.get(path, ""))


def _api_routes(app) -> list[tuple[str, str]]:
    """(method, path) of every route of the app that answers HTTP methods (FastAPI's and Starlette's own), so a
    route added later is covered without a change here."""
    routes = [(method, route.path) for route in app.routes for method in sorted(getattr(route, "methods", None) or ())
              if method != "HEAD"]
    assert all(path.startswith("/api/") or path == "/" for _, path in routes)
    assert sum(isinstance(route, APIRoute) for route in app.routes) >= 14
    return routes


def _cli_scenario(tmp_path, folder, name: str, set_toml: str):
    """A scenario file of one variant on the server region's baseline, and `dipsim scenarios run` arguments."""
    path = tmp_path / "variant.toml"
    path.write_text(f'[scenario]\nname = "api"\nbaseline = {json.dumps(str(folder / POLICY_FILE))}\n\n'
                    f'[[variant]]\nname = {json.dumps(name)}\nset = {set_toml}\n', encoding="utf-8")
    return ["scenarios", "run", str(path), "--cases", str(folder / CASES_DIR), "--hospitals",
            str(folder / HOSPITALS_FILE), "--catalog", str(folder / CATALOG_DIR), "-o", str(tmp_path / "out"),
            "--no-report", "-q"]


# ---------------------------------------------------------------- accounts and tokens


def test_login_me_logout(demo):
    client, tokens = demo["client"], demo["tokens"]
    assert client.get("/api/me", headers=tokens["bureau"]).json() == {"name": "bureau", "role": "bureau",
                                                                       "hospital_id": None}
    me = client.get("/api/me", headers=tokens["hospital"]).json()
    assert me == {"name": "hospital", "role": "hospital", "hospital_id": demo["hospital"]}
    password = demo["server"].demo_passwords["bureau"]
    answer = client.post("/api/login", json={"username": "bureau", "password": password})
    token = {"Authorization": f"Bearer {answer.json()['token']}"}
    assert answer.json()["expires_in"] == 8 * 3600
    assert client.get("/api/me", headers=token).status_code == 200
    assert client.post("/api/logout", headers=token).status_code == 200
    assert client.get("/api/me", headers=token).status_code == 401  # revoked
    assert client.get("/api/me", headers=tokens["bureau"]).status_code == 200  # the other token still works
    users = json.loads((demo["data"] / "users.json").read_text(encoding="utf-8"))
    assert password not in json.dumps(users) and users["bureau"]["hash"].startswith("$argon2id$")


def test_tokens_expire_and_logins_are_rate_limited(tmp_path):
    clock = Clock()
    app = create_app(tmp_path / "data", clock=clock, token_ttl_s=60)
    accounts = app.state.server.accounts
    accounts.add("ana", "right-password", "bureau")
    accounts.add("bo", "right-password", "hospital", "H0002")
    client = TestClient(app)
    token = client.post("/api/login", json={"username": "ana", "password": "right-password"}).json()["token"]
    header = {"Authorization": f"Bearer {token}"}
    clock.now += 59
    assert client.get("/api/me", headers=header).status_code == 200
    clock.now += 2
    assert client.get("/api/me", headers=header).status_code == 401  # expired
    # per user: 5 failures in a minute, then even the right password gets 429 until the minute has passed
    other = TestClient(app, client=("10.0.0.9", 40000))
    for _ in range(5):
        assert other.post("/api/login", json={"username": "bo", "password": "wrong-one"}).status_code == 401
    refused = client.post("/api/login", json={"username": "bo", "password": "right-password"})
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert client.post("/api/login", json={"username": "ana", "password": "right-password"}).status_code == 200
    clock.now += 61
    assert client.post("/api/login", json={"username": "bo", "password": "right-password"}).status_code == 200
    # per client address: 5 failures over any names, then that address gets 429 for every name
    for n in range(5):
        assert other.post("/api/login", json={"username": f"nobody{n}", "password": "x"}).status_code == 401
    assert other.post("/api/login", json={"username": "ana", "password": "right-password"}).status_code == 429
    assert client.post("/api/login", json={"username": "ana", "password": "right-password"}).status_code == 200
    entries = [json.loads(line) for line in (tmp_path / "data" / "audit.jsonl").read_text().splitlines()]
    assert sum(e["action"] == "login failed" for e in entries) == 10


def test_password_checks_run_a_few_at_a_time(tmp_path):
    """argon2 takes 64 MiB a check: 16 logins at once run at most VERIFY_AT_ONCE checks together, and all succeed."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from dipsim.server.accounts import VERIFY_AT_ONCE, Accounts

    accounts = Accounts(tmp_path / "users.json")
    accounts.add("ana", "right-password", "bureau")
    real, lock, now, most = accounts._hasher.verify, threading.Lock(), [0], [0]

    def slow_verify(hash_, password):
        with lock:
            now[0] += 1
            most[0] = max(most[0], now[0])
        time.sleep(0.02)
        try:
            return real(hash_, password)
        finally:
            with lock:
                now[0] -= 1

    class Slow:  # argon2's PasswordHasher, its checks counted
        verify = staticmethod(slow_verify)

    accounts._hasher = Slow()
    with ThreadPoolExecutor(16) as pool:
        users = list(pool.map(lambda _: accounts.verify("ana", "right-password"), range(16)))
    assert all(u is not None and u.name == "ana" for u in users)
    assert most[0] == VERIFY_AT_ONCE


def test_users_command_adds_an_account_from_stdin(tmp_path, monkeypatch, capsys):
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("a-long-password\n"))
    data = tmp_path / "data"
    assert main(["users", "add", "clerk", "--role", "hospital", "--hospital", "H0005", "--data", str(data)]) == 0
    assert main(["users", "list", "--data", str(data)]) == 0
    assert "clerk\thospital\tH0005" in capsys.readouterr().out
    app = create_app(data)
    assert TestClient(app).post("/api/login", json={"username": "clerk",
                                                    "password": "a-long-password"}).status_code == 200
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["users", "add", "x", "--role", "bureau", "--data", str(data)]) == 1
    assert "at least 8 characters" in capsys.readouterr().err


# ---------------------------------------------------------------- every route


def _path_values(demo, hospital: str, case_id: str) -> dict:
    return {"region": demo["region"], "run": demo["run"], "run2": demo["run2"], "hospital": hospital,
            "case_id": case_id, "upload": demo["upload"], "slot": "claims", "projection": demo["projection"]}


def _case_of(demo, hospital: str) -> str:
    import pyarrow.compute as pc

    table = demo["server"].region(demo["region"]).case_table
    return table.filter(pc.equal(table["hospital_id"], hospital))["case_id"][0].as_py()


def test_every_route_but_login_and_health_needs_a_token(demo):
    client, app = demo["client"], demo["app"]
    values = _path_values(demo, "H0001", _case_of(demo, "H0001"))
    routes = _api_routes(app)
    assert len(routes) >= 14
    checked = 0
    for method, path in routes:
        if path in OPEN:
            continue
        url = _filled(path, values)
        for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic YTpi"}):
            answer = client.request(method, url, headers=headers, json={"set": {}})
            assert answer.status_code == 401, (method, path, headers, answer.text)
            assert answer.headers["WWW-Authenticate"] == "Bearer"
        checked += 1
    assert checked >= 12
    assert client.get("/api/health").status_code == 200
    assert {path for _, path in routes} >= OPEN


def test_serve_and_users_are_commands():
    for args in (["serve", "--help"], ["users", "add", "--help"]):
        with pytest.raises(SystemExit) as done:
            main(args)
        assert done.value.code == 0


def _readable(answer) -> str:
    """A response as text to search: an Excel download by every cell of every sheet (a zip's bytes would hide the
    names), anything else as it is."""
    if answer.headers.get("content-type", "").startswith(XLSX_TYPE):
        import io

        from openpyxl import load_workbook

        book = load_workbook(io.BytesIO(answer.content))
        return "\n".join(str(c.value) for sheet in book.worksheets for row in sheet.iter_rows() for c in row
                         if c.value is not None)
    return answer.text


def _xlsx_rows(answer) -> list[dict]:
    """An Excel download's one sheet as {header: cell} rows (the cells themselves, for their values and formats)."""
    import io

    from openpyxl import load_workbook

    assert answer.status_code == 200 and answer.headers["content-type"].startswith(XLSX_TYPE), answer.text
    assert answer.headers["content-disposition"].startswith("attachment; filename=")
    sheet = load_workbook(io.BytesIO(answer.content)).worksheets[0]
    rows = list(sheet.iter_rows())
    heads = [c.value for c in rows[0]]
    return [dict(zip(heads, row)) for row in rows[1:]]


def _csv_rows(answer) -> list[dict]:
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv"), answer.text
    assert answer.content.startswith(b"\xef\xbb\xbf")  # UTF-8 with a BOM: Excel opens it as UTF-8
    return list(csv.DictReader(answer.content.decode("utf-8-sig").splitlines()))


def test_a_hospital_account_reads_no_other_hospitals_data_through_any_route(demo):
    """Every route of the route table, its path filled with another hospital's id and one of its cases, for every
    other hospital: 403 / 404, or an answer that names no other hospital (id or name)."""
    client, app, own = demo["client"], demo["app"], demo["hospital"]
    token = demo["tokens"]["hospital"]
    loaded = demo["server"].region(demo["region"])
    others = {h: n for h, n in loaded.names.items() if h != own}
    assert len(others) >= 10

    def assert_clean(text: str, where) -> None:
        assert text.strip(), where  # something readable to check (an xlsx: its cells' text)
        for hospital_id, name in others.items():
            assert hospital_id not in text and name not in text, (where, hospital_id, name)

    for method, path in _api_routes(app):
        if path == "/api/logout":  # would end this token (tested in test_login_me_logout)
            continue
        for other in others:
            url = _filled(path, _path_values(demo, other, _case_of(demo, other)))
            answer = client.request(method, url, headers=token, json={"name": "h", "set": {}})
            if (method, path) in BUREAU_ONLY or path.startswith("/api/uploads"):
                assert answer.status_code == 403, (method, path)  # runs, scenario files, audit, uploads: the bureau's
            if "{hospital}" in path or "{case_id}" in path:
                assert answer.status_code in (403, 404), (method, path, answer.status_code)
            if path in QUERIES:  # the query filled: the route answers (with the hospital's own rows only)
                assert answer.status_code == 200, (path, answer.text)
            if path.removeprefix("/api/runs/{run}/").split(".")[0] in BUREAU_TABLES \
                    or path.startswith("/api/regions/{region}/funds"):
                assert answer.status_code == 403, (path, answer.status_code)  # aggregates: the bureau's
            assert_clean(_readable(answer), (method, url))
    # and its own data it does read
    assert client.get(f"/api/regions/{demo['region']}/hospitals/{own}", headers=token).status_code == 200
    mine = _case_of(demo, own)
    explained = client.get(f"/api/regions/{demo['region']}/cases/{mine}/explain", headers=token)
    assert explained.status_code == 200 and f"hospital {own}" in explained.json()["text"]
    rows = client.get(f"/api/runs/{demo['run']}/hospitals", headers=token).json()["hospitals"]
    assert rows and {r["hospital_id"] for r in rows} == {own}
    routes = {path for _, path in _api_routes(app)}  # the downloads were among the routes checked above
    assert set(_api_routes(app)) >= BUREAU_ONLY
    assert {"/api/runs/{run}/hospitals.xlsx", "/api/runs/{run}/hospitals.csv"} <= routes
    sheet = _xlsx_rows(client.get(f"/api/runs/{demo['run']}/hospitals.xlsx", headers=token))
    assert [r["医院编码"].value for r in sheet] == [own] * len(rows)
    assert sheet[0]["医院名称"].value == loaded.names[own]
    table = _csv_rows(client.get(f"/api/runs/{demo['run']}/hospitals.csv", headers=token))
    assert [r["医院编码"] for r in table] == [own] * len(rows)
    run = client.get(f"/api/runs/{demo['run']}", headers=token).json()
    assert run["point_values"] and run["set"]["coefficient.hospital"] == {}  # H0001's coefficient not shown
    assert not {"pools", "summary", "by_level", "by_type"} & set(run)  # the bureau's aggregates
    compared = client.get(f"/api/regions/{demo['region']}/compare?runs={demo['run']},{demo['run2']}",
                          headers=token).json()
    assert {h["hospital_id"] for h in compared["hospitals"]} == {own} and len(compared["runs"]) == 2
    assert compared["runs"][0]["set"]["coefficient.hospital"] == {}
    assert client.get("/api/audit", headers=token).status_code == 403
    # the bureau reads every hospital
    bureau = demo["tokens"]["bureau"]
    rows = client.get(f"/api/runs/{demo['run']}/hospitals", headers=bureau).json()["hospitals"]
    assert {r["hospital_id"] for r in rows} == set(loaded.names)


# ---------------------------------------------------------------- runs against the command line


def test_a_run_equals_scenarios_run_to_the_fen(demo, tmp_path, capsys):
    client, bureau = demo["client"], demo["tokens"]["bureau"]
    assert main(_cli_scenario(tmp_path, demo["folder"], "中医加成 10%", VARIANT_TOML)) == 0
    capsys.readouterr()
    with open(tmp_path / "out" / "hospitals.csv", encoding="utf-8-sig") as f:
        cli = {(r["scenario"], r["hospital_id"], r["pool"]): _yuan_fen(r["fund_payout"]) for r in csv.DictReader(f)}
    rows = client.get(f"/api/runs/{demo['run']}/hospitals", headers=bureau).json()["hospitals"]
    assert len(rows) * 2 == len(cli) and len(rows) >= 12
    moved = 0
    for r in rows:
        key = (r["hospital_id"], r["pool"])
        assert _yuan_fen(r["baseline_payout"]) == cli[("baseline", *key)]
        assert _yuan_fen(r["payout"]) == cli[("中医加成 10%", *key)]
        change = _yuan_fen(r["payout"]) - _yuan_fen(r["baseline_payout"])
        assert _yuan_fen(r["change"]) == change
        moved += abs(change)
    assert moved > 0  # the variant moves money
    with open(tmp_path / "out" / "pools.csv", encoding="utf-8-sig") as f:
        pools = {(r["scenario"], r["pool"]): float(r["point_value"]) for r in csv.DictReader(f)}
    run = client.get(f"/api/runs/{demo['run']}", headers=bureau).json()
    for p in run["point_values"]:
        assert p["baseline"] == pytest.approx(pools[("baseline", p["pool"])], rel=1e-12)
        assert p["variant"] == pytest.approx(pools[("中医加成 10%", p["pool"])], rel=1e-12)
    # the audit log names the same policy and inputs as the command line's manifest
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text(encoding="utf-8"))
    entry = next(e for e in client.get("/api/audit", headers=bureau).json()["entries"] if e["action"] == "run")
    import hashlib

    assert entry["baseline_sha256"] == manifest["baseline_sha256"]
    assert entry["inputs_sha256"] == hashlib.sha256("".join(i["sha256"] for i in manifest["inputs"]).encode()
                                                    ).hexdigest()
    assert entry["user"] == "bureau" and entry["set"] == VARIANT and entry["time"]


def test_the_downloads_equal_scenarios_run_to_the_fen(demo, tmp_path, capsys):
    """hospitals.xlsx and hospitals.csv of a run: every payout (baseline, variant, change) equal to `dipsim scenarios
    run`'s hospitals.csv to the fen, money as numbers formatted #,##0.00, text as text, levels in natural order."""
    client, bureau = demo["client"], demo["tokens"]["bureau"]
    assert main(_cli_scenario(tmp_path, demo["folder"], "中医加成 10%", VARIANT_TOML)) == 0
    capsys.readouterr()
    with open(tmp_path / "out" / "hospitals.csv", encoding="utf-8-sig") as f:
        cli = {(r["scenario"], r["hospital_id"], r["pool"]): _yuan_fen(r["fund_payout"]) for r in csv.DictReader(f)}
    names = demo["server"].region(demo["region"]).names
    sheet = _xlsx_rows(client.get(f"/api/runs/{demo['run']}/hospitals.xlsx", headers=bureau))
    assert len(sheet) * 2 == len(cli) and len(sheet) >= 12
    assert list(sheet[0]) == ["医院编码", "医院名称", "统筹区-险种", "医院等级", "机构类型", "基准点数", "方案点数",
                              "基准基金支付（元）", "方案基金支付（元）", "变化（元）", "变化率"]
    order = ["三级甲等", "三级乙等", "三级", "二级甲等", "二级乙等", "二级", "一级"]
    levels = [r["医院等级"].value for r in sheet]
    assert levels == sorted(levels, key=order.index)
    moved = 0
    for r in sheet:
        key = (r["医院编码"].value, r["统筹区-险种"].value)
        for head in ("医院编码", "医院名称", "统筹区-险种", "医院等级", "机构类型"):
            assert r[head].data_type == "s", head  # text, never a formula
        assert r["医院名称"].value == names[key[0]]
        for head in ("基准基金支付（元）", "方案基金支付（元）", "变化（元）"):
            assert isinstance(r[head].value, float | int) and r[head].number_format == "#,##0.00", head
        base, variant = _yuan_fen(repr(r["基准基金支付（元）"].value)), _yuan_fen(repr(r["方案基金支付（元）"].value))
        assert base == cli[("baseline", *key)] and variant == cli[("中医加成 10%", *key)], key
        assert _yuan_fen(repr(r["变化（元）"].value)) == variant - base
        if base:
            assert r["变化率"].value == pytest.approx((variant - base) / base, abs=1e-6)
            assert r["变化率"].number_format == "0.00%"
        moved += abs(variant - base)
    assert moved > 0
    table = _csv_rows(client.get(f"/api/runs/{demo['run']}/hospitals.csv", headers=bureau))
    assert len(table) == len(sheet) and "变化率（%）" in table[0]
    for r in table:
        key = (r["医院编码"], r["统筹区-险种"])
        assert _yuan_fen(r["基准基金支付（元）"]) == cli[("baseline", *key)]
        assert _yuan_fen(r["方案基金支付（元）"]) == cli[("中医加成 10%", *key)]
    # not done yet, or no such run: no file
    assert client.get("/api/runs/x0000000000000000/hospitals.xlsx", headers=bureau).status_code == 404


def test_bad_set_values_give_the_command_lines_messages(demo, tmp_path, capsys):
    client, bureau = demo["client"], demo["tokens"]["bureau"]
    bad = {"coefficient.tcm_hospital_bonus": -0.5, "outlier.hgh_ratio": 2.0, "budget.point_value_floor": "x"}
    answer = client.post(f"/api/regions/{demo['region']}/runs", headers=bureau, json={"name": "bad", "set": bad})
    assert answer.status_code == 422
    problems = answer.json()["detail"]["problems"]
    assert main(_cli_scenario(tmp_path, demo["folder"], "bad", '{ "coefficient.tcm_hospital_bonus" = -0.5, '
                                                               '"outlier.hgh_ratio" = 2.0, '
                                                               '"budget.point_value_floor" = "x" }')) == 1
    cli = [line.strip() for line in capsys.readouterr().err.splitlines() if line.startswith("  variant")]
    assert problems == cli and len(cli) == 3
    assert any("did you mean outlier.high_ratio" in p for p in problems)
    # a name used twice and the baseline's name: the scenario file's message too
    answer = client.post(f"/api/regions/{demo['region']}/runs", headers=bureau,
                         json={"name": "baseline", "set": {}})
    assert answer.json()["detail"]["problems"] == ["variant 'baseline': the name is used twice"]
    assert client.post(f"/api/regions/{demo['region']}/runs", headers=bureau,
                       json={"set": [1, 2]}).status_code == 422


# ---------------------------------------------------------------- the rest of the routes


def test_region_overview_parameters_groups_and_explain(demo):
    client, bureau, region = demo["client"], demo["tokens"]["bureau"], demo["region"]
    overview = client.get(f"/api/regions/{region}", headers=bureau).json()
    assert overview["cases"] == 3000 and overview["hospitals"] == 12
    assert sum(r["hospitals"] for r in overview["by_level"]) == 12
    levels = [r["level"] for r in overview["by_level"]]
    assert levels == sorted(levels, key=["三级甲等", "三级乙等", "三级", "二级甲等", "二级乙等", "二级", "一级"].index)
    assert sum(_yuan_fen(p["budget"]) for p in overview["pools"]) == _yuan_fen(overview["budget"])
    for p in overview["pools"]:  # a fixed budget is paid out to the fen
        assert _yuan_fen(p["fund_payout"]) == _yuan_fen(p["budget_available"])
    parameters = client.get(f"/api/regions/{region}/parameters", headers=bureau).json()["parameters"]
    by_path = {p["path"]: p for p in parameters}
    assert by_path["outlier.high_ratio"]["value"] == 2.0 and by_path["payment.mode"]["value"] == "dip"
    groups = client.get(f"/api/regions/{region}/hospitals/H0001", headers=bureau).json()
    balances = [_yuan_fen(g["balance"]) for g in groups["groups"]]
    assert balances == sorted(balances) and sum(g["cases"] for g in groups["groups"]) == groups["cases"]
    for g in groups["groups"]:
        assert _yuan_fen(g["balance"]) == _yuan_fen(g["payment"]) - _yuan_fen(g["cost"])
    case = _case_of(demo, "H0001")
    text = client.get(f"/api/regions/{region}/cases/{case}/explain", headers=bureau).json()["text"]
    assert text.startswith(f"case {case}: hospital H0001") and "9. pool point value" in text
    assert client.get(f"/api/regions/{region}/cases/NO-SUCH-CASE/explain", headers=bureau).status_code == 404
    assert client.get("/api/regions/r000000000000", headers=bureau).status_code == 404
    assert client.get("/api/regions/..%2F..%2Fetc", headers=bureau).status_code in (404, 422)
    assert client.get("/api/runs/x0000000000000000", headers=bureau).status_code == 404


def test_docs_are_offline_and_bodies_are_limited(demo):
    client = demo["client"]
    spec = client.get("/api/openapi.json").json()
    assert "/api/runs/{run}/hospitals" in spec["paths"]
    page = client.get("/api/docs").text
    assert "<script" not in page and "cdn" not in page.lower() and "/api/login" in page
    huge = client.post("/api/login", content=b"{" + b" " * 100_000 + b"}",
                       headers={"Content-Type": "application/json"})
    assert huge.status_code == 413


def test_a_restart_keeps_regions_runs_and_users(demo):
    app = create_app(demo["data"])
    client = TestClient(app)
    password = demo["server"].demo_passwords["bureau"]
    token = client.post("/api/login", json={"username": "bureau", "password": password}).json()["token"]
    header = {"Authorization": f"Bearer {token}"}
    assert client.get(f"/api/runs/{demo['run']}", headers=header).json()["status"] == "done"
    assert [r["id"] for r in client.get("/api/regions", headers=header).json()["regions"]] == [demo["region"]]
    assert app.state.server.demo_passwords == {}  # --demo on a data folder with accounts makes none


def test_twenty_concurrent_runs_queue_in_the_worker_pool(demo):
    """20 runs posted at once: every one accepted (202), queued in order with progress 0/2, at most `workers` (1)
    running at any moment on one bounded pool thread, all done with the same payouts as one posted alone; past the
    queue's bound a run gets 503 with Retry-After, and nothing is left pending."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    client, bureau, server = demo["client"], demo["tokens"]["bureau"], demo["server"]
    url = f"/api/regions/{demo['region']}/runs"
    before = {k for k, _ in server.data.runs.items()}
    seen_running, views = [], []
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            seen_running.append(sum(r["status"] == "running" for _, r in server.data.runs.items()))
            stop.wait(0.002)

    watcher = threading.Thread(target=watch)
    watcher.start()
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda i: client.post(url, headers=bureau, json={"name": "中医加成 10%",
                                                                                 "set": VARIANT}), range(20)))
    assert [a.status_code for a in answers] == [202] * 20, [a.text for a in answers if a.status_code != 202]
    for a in answers:
        view = a.json()
        assert view["status"] in ("queued", "running", "done")
        if view["status"] == "queued":
            assert view["progress"] == {"done": 0, "total": 2}
        views.append(view["id"])
    assert len([t for t in threading.enumerate() if t.name.startswith("dipsim-run")]) <= 1
    server.runs.wait(120)
    stop.set()
    watcher.join()
    assert max(seen_running) <= 1 and server.runs.pending == 0
    reference = client.get(f"/api/runs/{demo['run']}/hospitals", headers=bureau).json()["hospitals"]
    for run in views:
        view = client.get(f"/api/runs/{run}", headers=bureau).json()
        assert view["status"] == "done" and view["progress"] == {"done": 2, "total": 2}
        assert client.get(f"/api/runs/{run}/hospitals", headers=bureau).json()["hospitals"] == reference
    assert {k for k, _ in server.data.runs.items()} - before == set(views)
    limit = server.runs.max_pending
    server.runs.max_pending = 0  # a full queue
    try:
        full = client.post(url, headers=bureau, json={"name": "x", "set": {}})
    finally:
        server.runs.max_pending = limit
    assert full.status_code == 503 and full.headers["Retry-After"] == "1"
    assert {k for k, _ in server.data.runs.items()} - before == set(views)  # no record of the refused run


# ---------------------------------------------------------------- 情景对比 and 医院详情


def _cli_tables(tmp_path, demo, name: str, set_toml: str, capsys) -> dict[str, list[dict]]:
    """`dipsim scenarios run` of one variant on the server region's files: its CSV tables as rows of text."""
    assert main(_cli_scenario(tmp_path, demo["folder"], name, set_toml)) == 0
    capsys.readouterr()
    tables = {}
    for table in ("hospitals", "pools", "summary", "by_level", "funds"):
        with open(tmp_path / "out" / f"{table}.csv", encoding="utf-8-sig") as f:
            tables[table] = list(csv.DictReader(f))
    return tables


def test_a_runs_by_level_by_type_and_review_equal_scenarios_run(demo, tmp_path, capsys):
    """By level (natural order) and by type: baseline and variant payout, change, hospitals, summed by hand from the
    command line's hospitals.csv; by level also equal to its by_level.csv; the summary's special-case review
    (特例单议) and winners equal its summary.csv."""
    client, bureau = demo["client"], demo["tokens"]["bureau"]
    cli = _cli_tables(tmp_path, demo, REVIEW_NAME, REVIEW_TOML, capsys)
    run = client.get(f"/api/runs/{demo['run2']}", headers=bureau).json()
    for key, view in (("level", run["by_level"]), ("type", run["by_type"])):
        expected: dict = {}
        for r in cli["hospitals"]:
            entry = expected.setdefault(r[key], {"hospitals": set(), "baseline": 0, "variant": 0})
            entry["hospitals"].add(r["hospital_id"])
            entry["baseline" if r["scenario"] == "baseline" else "variant"] += _yuan_fen(r["fund_payout"])
        assert {v[key] for v in view} == set(expected)
        for v in view:
            e = expected[v[key]]
            assert (_yuan_fen(v["baseline_payout"]), _yuan_fen(v["payout"])) == (e["baseline"], e["variant"])
            assert _yuan_fen(v["change"]) == e["variant"] - e["baseline"] and v["hospitals"] == len(e["hospitals"])
            assert v["change_pct"] == pytest.approx((e["variant"] - e["baseline"]) / e["baseline"] * 100, abs=1e-4)
    order = ["三级甲等", "三级乙等", "三级", "二级甲等", "二级乙等", "二级", "一级"]
    levels = [v["level"] for v in run["by_level"]]
    assert levels == sorted(levels, key=order.index) and len(levels) >= 2
    by_level = {(r["scenario"], r["level"]): _yuan_fen(r["fund_payout"]) for r in cli["by_level"]}
    for v in run["by_level"]:
        assert _yuan_fen(v["payout"]) == by_level[(REVIEW_NAME, v["level"])]
    assert sum(_yuan_fen(v["change"]) for v in run["by_type"]) == 0  # a fixed budget moves money, adds none
    summary = {r["scenario"]: r for r in cli["summary"]}
    for key, name in (("baseline", "baseline"), ("variant", REVIEW_NAME)):
        mine, theirs = run["summary"][key], summary[name]
        assert mine["review_applied"] == int(theirs["review_applied"])
        assert mine["review_approved"] == pytest.approx(float(theirs["review_approved"]), abs=1e-9)
        assert _yuan_fen(mine["review_amount"]) == _yuan_fen(theirs["review_amount"])
        assert (mine["winners"], mine["losers"]) == (int(theirs["winners"]), int(theirs["losers"]))
        assert mine["tcm_hospital_share"] == pytest.approx(float(theirs["tcm_hospital_share"]), rel=1e-12)
    assert run["summary"]["variant"]["review_applied"] > 0 and _yuan_fen(run["summary"]["variant"]["review_amount"]) > 0
    assert run["summary"]["baseline"]["review_applied"] == 0  # the baseline has no review
    pools = {(r["scenario"], r["pool"]): _yuan_fen(r["fund_payout"]) for r in cli["pools"]}
    for p in run["pools"]:
        assert _yuan_fen(p["fund_payout"]) == pools[(REVIEW_NAME, p["pool"])]
        assert _yuan_fen(p["baseline_fund_payout"]) == pools[("baseline", p["pool"])]


def test_compare_puts_runs_side_by_side(demo):
    """GET compare?runs=a,b: each run's point values and each hospital's payout and change equal to that run's own
    view; fewer than 2 runs or a bad id: 422; a run not done: 409."""
    client, bureau, region = demo["client"], demo["tokens"]["bureau"], demo["region"]
    runs = [demo["run"], demo["run2"]]
    view = client.get(f"/api/regions/{region}/compare?runs={','.join(runs)}", headers=bureau).json()
    assert [r["id"] for r in view["runs"]] == runs and view["runs"][1]["name"] == REVIEW_NAME
    assert view["runs"][1]["set"] == REVIEW
    for i, run in enumerate(runs):
        single = client.get(f"/api/runs/{run}", headers=bureau).json()["point_values"]
        for p in view["point_values"]:
            own = next(s for s in single if s["pool"] == p["pool"])
            assert p["runs"][i] == own["variant"] and p["baseline"] == own["baseline"]
        rows = {(h["hospital_id"], h["pool"]): h for h in
                client.get(f"/api/runs/{run}/hospitals", headers=bureau).json()["hospitals"]}
        assert len(rows) == len(view["hospitals"])
        for h in view["hospitals"]:
            own = rows[(h["hospital_id"], h["pool"])]
            assert h["baseline_payout"] == own["baseline_payout"]
            assert h["runs"][i]["payout"] == own["payout"] and h["runs"][i]["change"] == own["change"]
            assert _yuan_fen(h["runs"][i]["change"]) == _yuan_fen(own["payout"]) - _yuan_fen(h["baseline_payout"])
    assert any(h["runs"][0]["payout"] != h["runs"][1]["payout"] for h in view["hospitals"])
    for bad in (runs[0], f"{runs[0]},{runs[0]}", f"{runs[0]},../x", ""):
        assert client.get(f"/api/regions/{region}/compare?runs={bad}", headers=bureau).status_code == 422, bad
    assert client.get(f"/api/regions/{region}/compare?runs={runs[0]},x0000000000000000",
                      headers=bureau).status_code == 404
    index = demo["server"].data.runs
    record = index.get(runs[1])
    try:  # runs made on another baseline, and a run not done, are not compared
        index.update(runs[1], baseline_sha256="0" * 64)
        assert client.get(f"/api/regions/{region}/compare?runs={','.join(runs)}", headers=bureau).status_code == 409
        index.update(runs[1], baseline_sha256=record["baseline_sha256"], status="running")
        assert client.get(f"/api/regions/{region}/compare?runs={','.join(runs)}", headers=bureau).status_code == 409
    finally:
        index.update(runs[1], baseline_sha256=record["baseline_sha256"], status=record["status"])
    rows = _csv_rows(client.get(f"/api/regions/{region}/compare.csv?runs={','.join(runs)}", headers=bureau))
    assert len(rows) == len(view["hospitals"])
    for r, h in zip(rows, view["hospitals"]):
        assert _yuan_fen(r[f"{REVIEW_NAME}：基金支付（元）"]) == _yuan_fen(h["runs"][1]["payout"])
        assert _yuan_fen(r["中医加成 10%：变化（元）"]) == _yuan_fen(h["runs"][0]["change"])


def test_fund_monitoring_equals_scenarios_run(demo, tmp_path, capsys):
    """GET /api/regions/{region}/funds (bureau only): the baseline's fund monitoring, row for row the command
    line's funds.csv (money to the fen), computed once per loaded region."""
    client, bureau = demo["client"], demo["tokens"]["bureau"]
    cli = _cli_tables(tmp_path, demo, "中医加成 10%", VARIANT_TOML, capsys)["funds"]
    funds = client.get(f"/api/regions/{demo['region']}/funds", headers=bureau).json()["funds"]
    assert len(funds) == len(cli) >= 12
    for mine, theirs in zip(funds, cli):
        assert (mine["pool"], mine["month"], mine["level"]) == (theirs["pool"], theirs["month"], theirs["level"])
        assert mine["cases"] == int(theirs["cases"])
        for key in ("claims", "claims_to_date", "budget_to_date", "projected_balance"):
            assert _yuan_fen(mine[key]) == _yuan_fen(theirs[key]), key
        assert mine["execution"] == pytest.approx(float(theirs["execution"]), abs=1e-12)
    loaded = demo["server"].region(demo["region"])
    assert loaded.funds() is loaded.funds()  # kept, not computed per request
    sheet = _xlsx_rows(client.get(f"/api/regions/{demo['region']}/funds.xlsx", headers=bureau))
    assert [r["当月基金应付（元）"].value for r in sheet] == [float(Decimal(f["claims"])) for f in funds]
    assert sheet[0]["当月基金应付（元）"].number_format == "#,##0.00"
    assert sheet[0]["监测等级"].value == funds[0]["level"]


def test_a_hospitals_payment_chain_equals_the_settle_files(demo):
    """GET .../hospitals/{hospital}/chain: per pool the points after each case step, summed here by hand over the
    baseline's cases.parquet, the final points equal to hospitals.csv's, and the money of settlement equal to
    hospitals.csv to the fen (both files read here with the csv module and pyarrow, not through the server)."""
    import pyarrow.parquet as pq

    client, bureau, region = demo["client"], demo["tokens"]["bureau"], demo["region"]
    out = demo["folder"] / "baseline"
    with open(out / "hospitals.csv", encoding="utf-8-sig") as f:
        settled = list(csv.DictReader(f))
    cases = pq.read_table(out / "cases.parquet").to_pylist()
    for hospital in ("H0001", demo["hospital"]):
        chain = client.get(f"/api/regions/{region}/hospitals/{hospital}/chain", headers=bureau).json()
        rows = [r for r in settled if r["hospital_id"] == hospital]
        assert [p["pool"] for p in chain["pools"]] == [r["pool"] for r in rows]
        for p, row in zip(chain["pools"], rows):
            mine = [c for c in cases if c["hospital_id"] == hospital and c["pool"] == row["pool"]]
            assert p["cases"] == len(mine) == int(row["cases"])
            steps = {s["step"]: s["points"] for s in p["points"]}
            by_hand = {"group_points": 0.0, "outlier": 0.0, "coefficient": 0.0, "tcm_bonus": 0.0, "priced": 0.0,
                       "supervised": 0.0, "final": 0.0}
            for c in mine:
                x = c["group_points"] * c["outlier_factor"] * (0.0 if c["paid_by_item"] else 1.0)
                by_hand["group_points"] += c["group_points"]
                by_hand["outlier"] += x
                by_hand["coefficient"] += x * c["coefficient"]
                by_hand["tcm_bonus"] += x * c["coefficient"] * (1 + c["bonus"])
                by_hand["priced"] += c["priced_points"]
                by_hand["supervised"] += c["supervised_points"]
                by_hand["final"] += c["case_points"]
            for step, value in by_hand.items():
                assert steps[step] == pytest.approx(value, abs=1e-3), step
            # the priced points are the product of the factors (step 5 = steps 1-4 x the auxiliary factor, 1 here)
            assert steps["priced"] == pytest.approx(steps["tcm_bonus"], abs=1e-3)
            assert round(steps["final"], 4) == pytest.approx(float(row["points"]), abs=1e-4)
            for key in ("cost", "patient_paid", "group_payment", "band_adjustment", "payment", "fund_payout",
                        "prepaid", "deposit", "deposit_released", "clearing"):
                assert _yuan_fen(p["money"][key]) == _yuan_fen(row[key]), key
            assert _yuan_fen(p["money"]["fund_payout"]) == _yuan_fen(p["money"]["payment"]) - \
                _yuan_fen(p["money"]["patient_paid"])
            assert sum(p["outliers"].values()) == p["cases"]
        assert _yuan_fen(chain["total"]["fund_payout"]) == sum(_yuan_fen(r["fund_payout"]) for r in rows)
    # a hospital account: its own chain only
    hospital = demo["tokens"]["hospital"]
    assert client.get(f"/api/regions/{region}/hospitals/{demo['hospital']}/chain", headers=hospital).status_code == 200
    assert client.get(f"/api/regions/{region}/hospitals/H0001/chain", headers=hospital).status_code == 403
    table = _csv_rows(client.get(f"/api/regions/{region}/hospitals/H0001/chain.csv", headers=bureau))
    paid = [r for r in table if r["项目"] == "基金支付" and r["统筹区-险种"] != "合计"]
    assert [_yuan_fen(r["金额（元）"]) for r in paid] == [_yuan_fen(r["fund_payout"]) for r in settled
                                                      if r["hospital_id"] == "H0001"]
    total = next(r for r in table if r["项目"] == "基金支付" and r["统筹区-险种"] == "合计")
    assert _yuan_fen(total["金额（元）"]) == sum(_yuan_fen(r["金额（元）"]) for r in paid)


def test_every_table_of_the_pages_downloads(demo):
    """Each of a run's tables, the overview's, a hospital's and the compare view, as xlsx and CSV: Chinese
    headers, money as numbers #,##0.00 equal to the JSON's yuan to the fen, text never a formula."""
    client, bureau, region, run = demo["client"], demo["tokens"]["bureau"], demo["region"], demo["run2"]
    view = client.get(f"/api/runs/{run}", headers=bureau).json()
    for table, rows, money in (("by_level", view["by_level"], "方案基金支付（元）"),
                               ("by_type", view["by_type"], "方案基金支付（元）"),
                               ("pools", view["pools"], "方案基金支付（元）")):
        sheet = _xlsx_rows(client.get(f"/api/runs/{run}/{table}.xlsx", headers=bureau))
        assert len(sheet) == len(rows)
        key = "payout" if table != "pools" else "fund_payout"
        for cell, row in zip(sheet, rows):
            assert _yuan_fen(repr(cell[money].value)) == _yuan_fen(row[key])
            assert cell[money].number_format == "#,##0.00"
        text = _csv_rows(client.get(f"/api/runs/{run}/{table}.csv", headers=bureau))
        assert [_yuan_fen(r[money]) for r in text] == [_yuan_fen(r[key]) for r in rows]
    summary = _xlsx_rows(client.get(f"/api/runs/{run}/summary.xlsx", headers=bureau))
    assert [r["方案"].value for r in summary] == ["基准方案", REVIEW_NAME]
    assert summary[1]["特例单议申请例数"].value == view["summary"]["variant"]["review_applied"]
    values = _xlsx_rows(client.get(f"/api/runs/{run}/point_values.xlsx", headers=bureau))
    assert [r["方案点值（元/点）"].value for r in values] == pytest.approx([p["variant"] for p in view["point_values"]],
                                                                   rel=1e-14)  # Excel keeps 15 digits
    overview = client.get(f"/api/regions/{region}", headers=bureau).json()
    pools = _xlsx_rows(client.get(f"/api/regions/{region}/pools.xlsx", headers=bureau))
    assert [_yuan_fen(repr(r["预算（元）"].value)) for r in pools] == [_yuan_fen(p["budget"])
                                                                   for p in overview["pools"]]
    levels = _xlsx_rows(client.get(f"/api/regions/{region}/by_level.xlsx", headers=bureau))
    assert sum(r["医院数"].value for r in levels) == overview["hospitals"]
    groups = client.get(f"/api/regions/{region}/hospitals/H0001", headers=bureau).json()["groups"]
    sheet = _xlsx_rows(client.get(f"/api/regions/{region}/hospitals/H0001/groups.xlsx", headers=bureau))
    assert [r["病组"].value for r in sheet] == [g["group"] for g in groups]
    assert [_yuan_fen(repr(r["盈亏（元）"].value)) for r in sheet] == [_yuan_fen(g["balance"]) for g in groups]
    assert all(r["病组"].data_type == "s" for r in sheet)
    english = _csv_rows(client.get(f"/api/runs/{run}/by_level.csv?lang=en", headers=bureau))
    assert "variant fund payout (yuan)" in english[0]
