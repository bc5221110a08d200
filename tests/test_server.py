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

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
OPEN = {"/api/health", "/api/login", "/api/docs", "/api/openapi.json",  # no token needed; no data in them
        "/"}  # a redirect to the workbench's pages (/app/, static files: the same for everyone, no data)
VARIANT = {"coefficient.tcm_hospital_bonus": 0.1, "coefficient.hospital": {"H0001": 1.05}}
VARIANT_TOML = '{ "coefficient.tcm_hospital_bonus" = 0.1, "coefficient.hospital" = { "H0001" = 1.05 } }'


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
    server.runs.wait()
    hospital = server.accounts.get("hospital").hospital_id
    upload = client.post("/api/uploads", headers=tokens["bureau"], json={"title": "an upload"})  # for {upload}
    assert upload.status_code == 201, upload.text
    return {"app": app, "server": server, "client": client, "tokens": tokens, "region": region, "data": data,
            "run": run.json()["id"], "hospital": hospital, "folder": data / "regions" / region,
            "upload": upload.json()["id"]}


def _yuan_fen(text) -> int:
    """A yuan amount (text with at most 2 decimals) as whole fen, exactly."""
    value = Decimal(str(text)) * 100
    assert value == value.to_integral_value(), text
    return int(value)


def _filled(path: str, values: dict) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)


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
    return {"region": demo["region"], "run": demo["run"], "hospital": hospital, "case_id": case_id,
            "upload": demo["upload"], "slot": "claims"}


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
            if method == "POST" and path.endswith("/runs"):
                assert answer.status_code == 403  # runs are the bureau's
            if path.startswith("/api/uploads"):
                assert answer.status_code == 403, (method, path)  # uploads are the bureau's
            if "{hospital}" in path or "{case_id}" in path:
                assert answer.status_code in (403, 404), (method, path, answer.status_code)
            assert_clean(_readable(answer), (method, url))
    # and its own data it does read
    assert client.get(f"/api/regions/{demo['region']}/hospitals/{own}", headers=token).status_code == 200
    mine = _case_of(demo, own)
    explained = client.get(f"/api/regions/{demo['region']}/cases/{mine}/explain", headers=token)
    assert explained.status_code == 200 and f"hospital {own}" in explained.json()["text"]
    rows = client.get(f"/api/runs/{demo['run']}/hospitals", headers=token).json()["hospitals"]
    assert rows and {r["hospital_id"] for r in rows} == {own}
    routes = {path for _, path in _api_routes(app)}  # the downloads were among the routes checked above
    assert {"/api/runs/{run}/hospitals.xlsx", "/api/runs/{run}/hospitals.csv"} <= routes
    sheet = _xlsx_rows(client.get(f"/api/runs/{demo['run']}/hospitals.xlsx", headers=token))
    assert [r["医院编码"].value for r in sheet] == [own] * len(rows)
    assert sheet[0]["医院名称"].value == loaded.names[own]
    table = _csv_rows(client.get(f"/api/runs/{demo['run']}/hospitals.csv", headers=token))
    assert [r["医院编码"] for r in table] == [own] * len(rows)
    run = client.get(f"/api/runs/{demo['run']}", headers=token).json()
    assert run["point_values"] and run["set"]["coefficient.hospital"] == {}  # H0001's coefficient not shown
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
    assert text.startswith(f"case {case}: hospital H0001") and "8. pool point value" in text
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
