"""Projections of `dipsim serve` (多年预测, issue 20): a 2-year projection of the demo region through the API equals
`dipsim.project.project` on the same inputs to the fen; draws give the bands of `project_draws`; a hospital account
reads the point values and its own rows only; a hostile projection file (huge, nested, bad keys, a policy path) gets
a 4xx with its problems and no file it names is opened; names are returned as text; a projection can be cancelled;
a `scenario` column (lever scenarios) is kept and summed by scenario. Skipped without the server extra."""

from __future__ import annotations

import builtins
import csv
import io
import os
import pathlib
import tomllib
from decimal import Decimal

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("argon2")
pytest.importorskip("httpx")

import pandas as pd
from fastapi.testclient import TestClient

from dipsim.paths import scenarios_dir
from dipsim.project import project, project_draws, projection_of
from dipsim.projection.levers import lever_scenarios, project_levers
from dipsim.server import create_app
from dipsim.server import projections as server_projections

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MAX_DRAWS = 6  # the server's limit in these tests (dipsim serve --max-draws)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The demo region (small), the demo accounts logged in, and a 2-year projection of the shipped example done."""
    data = tmp_path_factory.mktemp("serve-projection") / "data"
    app = create_app(data, demo=True, demo_cases=3000, demo_hospitals=12, max_draws=MAX_DRAWS)
    server = app.state.server
    client = TestClient(app)
    tokens = {}
    for name, password in server.demo_passwords.items():
        answer = client.post("/api/login", json={"username": name, "password": password})
        tokens[name] = {"Authorization": f"Bearer {answer.json()['token']}"}
    region = next(iter(dict(server.data.regions.items())))
    started = client.post(f"/api/regions/{region}/projections", headers=tokens["bureau"],
                          json={"example": True, "years": 2, "draws": 3})
    assert started.status_code == 202, started.text
    server.projections.wait()
    yield {"app": app, "server": server, "client": client, "tokens": tokens, "region": region,
           "projection": started.json()["id"], "hospital": server.accounts.get("hospital").hospital_id,
           "loaded": server.region(region)}
    server.close()


def _fen(text) -> int:
    value = Decimal(str(text)) * 100
    assert value == value.to_integral_value(), text
    return int(value)


def _example(years: int):
    """The shipped example with `years` years, read by the Python API (as `dipsim project` reads it)."""
    data = tomllib.loads((scenarios_dir() / "projection_example.toml").read_text(encoding="utf-8"))
    data["projection"]["years"] = years
    return projection_of(data, "example")


def _get(served, user: str, path: str = ""):
    answer = served["client"].get(f"/api/projections/{served['projection']}{path}", headers=served["tokens"][user])
    assert answer.status_code == 200, answer.text
    return answer


def test_the_example_is_the_shipped_file_and_packaged():
    assert server_projections.example_text() == (scenarios_dir() / "projection_example.toml").read_text(
        encoding="utf-8")
    pyproject = tomllib.loads((pathlib.Path(__file__).parents[1] / "pyproject.toml").read_text(encoding="utf-8"))
    setuptools = pyproject["tool"]["setuptools"]
    assert setuptools["package-dir"]["dipsim.scenario_files"] == "scenarios"  # a wheel carries it ...
    assert "*.toml" in setuptools["package-data"]["dipsim.scenario_files"]  # ... as dipsim/scenario_files/*.toml
    assert "static/*.js" in setuptools["package-data"]["dipsim.server"]  # and the page's projection.js


def test_a_projection_equals_the_python_api_to_the_fen(served):
    loaded = served["loaded"]
    # the example's own projection and its lever scenarios ([scenario.NAME]), as `dipsim project` runs them
    expected = project_levers(loaded.cases, loaded.hospitals, loaded.policy,
                              lever_scenarios(_example(2), loaded.policy), loaded.grouped(None))
    scenarios = list(dict.fromkeys(expected.years["scenario"]))
    assert scenarios == ["baseline", "reserve", "floor", "caps", "reweight"]
    alone = project(loaded.cases, loaded.hospitals, loaded.policy, _example(2), loaded.grouped(None))
    assert expected.years[expected.years["scenario"] == "baseline"].drop(columns="scenario").reset_index(
        drop=True).equals(alone.years)  # the baseline is the file projected alone
    view = _get(served, "bureau").json()
    assert view["status"] == "done" and view["years"] == 2 and view["progress"]["done"] == view["progress"]["total"]
    assert any("not read" in note for note in view["notes"])  # the example's policy = "baseline.toml"
    years = view["years_table"]
    assert len(years) == len(expected.years) == 5 * 3 * 2  # 5 scenarios, years 0, 1, 2 of the demo's two pools
    for got, want in zip(years, expected.years.to_dict("records")):
        assert (got["scenario"], got["year"], got["pool"], got["status"]) == (want["scenario"], want["year"],
                                                                             want["pool"], want["status"])
        assert got["point_value"] == want["point_value"]
        for key in ("budget", "fund_payout", "income", "balance"):
            assert _fen(got[key]) == round(want[key] * 100), (key, got, want)
    assert [r["balance"] for r in years[:2]] == ["57000000.00", "64000000.00"]  # the example's base-year balances
    hospitals = view["hospitals"]
    assert len(hospitals) == len(expected.hospitals) == 5 * 3 * 12
    for got, want in zip(hospitals, expected.hospitals.to_dict("records")):
        assert (got["scenario"], got["year"], got["hospital_id"], got["cases"]) == (
            want["scenario"], want["year"], want["hospital_id"], want["cases"])
        assert got["name"] == loaded.names[got["hospital_id"]]
        for key in ("cost", "payment", "fund_payout"):
            assert _fen(got[key]) == round(want[key] * 100), (key, got, want)
    # by level: the hospitals' fund payouts in fen, summed by hand here
    sums: dict = {}
    for want in expected.hospitals.to_dict("records"):
        key = (want["scenario"], want["year"], want["level"])
        sums[key] = sums.get(key, 0) + round(want["fund_payout"] * 100)
    assert {(r["scenario"], r["year"], r["level"]): _fen(r["fund_payout"]) for r in view["by_level"]} == sums
    assert next(r["level"] for r in view["by_level"] if r["year"] == 0) == "三级甲等"  # levels in their natural order
    # the scenarios in the file's order, with their titles (the page's picker), and the by-level rows in it too
    assert [s["name"] for s in view["scenarios"]] == scenarios and view["scenarios"][1]["title"]
    assert list(dict.fromkeys(r["scenario"] for r in view["by_level"])) == scenarios
    # the years table as CSV: Chinese headers, the same fen
    rows = list(csv.DictReader(_get(served, "bureau", "/years.csv").content.decode("utf-8-sig").splitlines()))
    assert [_fen(r["基金支付（元）"]) for r in rows] == [round(v * 100) for v in expected.years["fund_payout"]]
    english = _get(served, "bureau", "/years.csv?lang=en").content.decode("utf-8-sig").splitlines()[0]
    assert "fund payout (yuan)" in english and "基金" not in english


def test_draws_give_the_bands_of_project_draws(served):
    loaded = served["loaded"]
    drawn = project_draws(loaded.cases, loaded.hospitals, loaded.policy, _example(2), loaded.grouped(None), 3)
    view = _get(served, "bureau").json()
    want = drawn.bands[(drawn.bands["what"] == "pool") & (drawn.bands["measure"] == "point_value")]
    got = [b for b in view["bands"] if b["what"] == "pool" and b["measure"] == "point_value"
           and b["scenario"] == "baseline"]  # the file's own projection (its scenarios have theirs)
    assert len(got) == len(want) == 6
    for g, w in zip(got, want.to_dict("records")):
        assert (g["year"], g["pool"], g["draws"]) == (w["year"], w["pool"], 3)
        assert g["p10"] == round(w["p10"], 6) and g["p90"] == round(w["p90"], 6)
    assert {b["measure"] for b in view["bands"] if b["what"] == "pool"} >= {"point_value", "balance"}
    book = _get(served, "bureau", "/bands.xlsx")
    assert book.headers["content-type"].startswith(XLSX_TYPE)
    from openpyxl import load_workbook

    sheet = load_workbook(io.BytesIO(book.content)).worksheets[0]
    assert [c.value for c in next(sheet.iter_rows())][:4] == ["方案", "年度", "对象", "统筹区-险种"]
    # more draws than the server allows: refused with the limit
    over = served["client"].post(f"/api/regions/{served['region']}/projections", headers=served["tokens"]["bureau"],
                                 json={"example": True, "years": 1, "draws": MAX_DRAWS + 1})
    assert over.status_code == 422 and f"0 to {MAX_DRAWS}" in over.json()["detail"]["message"]


def test_a_hospital_account_reads_the_point_values_and_its_own_rows(served):
    own, client = served["hospital"], served["client"]
    view = _get(served, "hospital").json()
    assert {k for r in view["years_table"] for k in r} == {"scenario", "year", "settlement_day", "pool", "point_value",
                                                           "status"}
    assert view["hospitals"] and {r["hospital_id"] for r in view["hospitals"]} == {own}
    assert {(b["what"], b["measure"]) for b in view["bands"]} == {("pool", "point_value"), ("hospital", "fund_payout")}
    assert {b["hospital_id"] for b in view["bands"] if b["what"] == "hospital"} == {own}
    assert "by_level" not in view and "user" not in view
    token = served["tokens"]["hospital"]
    path = f"/api/projections/{served['projection']}"
    for extension in ("csv", "xlsx"):
        assert client.get(f"{path}/by_level.{extension}", headers=token).status_code == 403
    rows = list(csv.DictReader(_get(served, "hospital", "/hospitals.csv").content.decode("utf-8-sig").splitlines()))
    assert {r["医院编码"] for r in rows} == {own} and len(rows) == 5 * 3  # 5 scenarios x 3 years
    bands = list(csv.DictReader(_get(served, "hospital", "/bands.csv").content.decode("utf-8-sig").splitlines()))
    assert {(r["对象"], r["指标"]) for r in bands} == {("pool", "point_value"), ("hospital", "cases"),
                                                  ("hospital", "points"), ("hospital", "payment"),
                                                  ("hospital", "fund_payout")}
    assert {r["医院编码"] for r in bands if r["对象"] == "hospital"} == {own}
    header = _get(served, "hospital", "/years.csv").content.decode("utf-8-sig").splitlines()[0]
    assert "基金" not in header and "预算" not in header  # the pools' money is the bureau's
    started = client.post(f"/api/regions/{served['region']}/projections", headers=token, json={"example": True})
    assert started.status_code == 403
    assert client.post(f"{path}/cancel", headers=token).status_code == 403


HOSTILE = """[projection]
name = "x"
years = 2
policy = "/etc/passwd"
colour = "red"

[demand]
volume_growth = "fast"

[evil]
run = "rm -rf /"
"""


@pytest.fixture
def opened(monkeypatch):
    """Every path the process opens while the test runs (open, Path.open / read_text / read_bytes, os.open)."""
    seen: list[str] = []

    def spy(real):
        def call(path, *args, **kwargs):
            seen.append(str(path))
            return real(path, *args, **kwargs)

        return call

    monkeypatch.setattr(builtins, "open", spy(builtins.open))
    monkeypatch.setattr(io, "open", spy(io.open))
    monkeypatch.setattr(os, "open", spy(os.open))
    for name in ("open", "read_text", "read_bytes"):
        monkeypatch.setattr(pathlib.Path, name, spy(getattr(pathlib.Path, name)))
    return seen


def _post(served, body: dict):
    return served["client"].post(f"/api/regions/{served['region']}/projections", headers=served["tokens"]["bureau"],
                                 json=body)


def test_a_hostile_projection_file_is_refused_with_its_problems_and_nothing_it_names_is_opened(served, opened):
    before = len(served["server"].projections.index.items())
    answer = _post(served, {"text": HOSTILE, "years": 2})
    assert answer.status_code == 422
    problems = answer.json()["detail"]["problems"]
    assert len(problems) == 4
    assert any(p.startswith("[projection] policy (line 4): '/etc/passwd' names a file") for p in problems)
    assert any(p.startswith("[projection] colour (line 5): unknown key") for p in problems)
    assert any(p.startswith("[demand] volume_growth (line 8): a yearly rate") for p in problems)
    assert any(p.startswith("[evil] (line 10): unknown table") for p in problems)
    for policy in ("../regions/policy.toml", "~/p.toml", "C:\\\\p.toml", "sub/p.toml", ".hidden.toml"):
        text = f'[projection]\nyears = 1\npolicy = "{policy}"\n'
        refused = _post(served, {"text": text, "years": 1})
        assert refused.status_code == 422 and "names a file on the server" in refused.text, policy
    assert not [p for p in opened if "passwd" in p or p.endswith("p.toml") or "hidden" in p]
    huge = "# " + "x" * 40_000 + "\n[projection]\nyears = 1\n"
    answer = _post(served, {"text": huge})
    assert answer.status_code == 422 and "over the limit of 32,768" in answer.text
    assert _post(served, {"text": "# " + "x" * 100_000}).status_code == 413  # the server's body limit
    nested = "[projection]\nyears = 1\n[demand]\nvolume_growth = " + "[" * 5000 + "]" * 5000 + "\n"
    assert _post(served, {"text": nested}).status_code == 422
    assert _post(served, {"text": "[projection\nyears = 1"}).status_code == 422  # not TOML: the parser's line
    for body, says in (({"example": True, "years": 11}, "from 1 to 10"), ({"example": True, "years": 0}, "from 1"),
                       ({"example": True, "draws": -1}, "draws"), ({"example": True, "text": "x"}, "either"),
                       ({}, "either"), ({"example": True, "seed": -5}, "seed")):
        answer = _post(served, body)
        assert answer.status_code == 422 and says in answer.text, (body, answer.text)
    assert _post(served, {"example": True, "years": "many"}).status_code == 422
    unknown = '[projection]\nyears = 1\n[demand]\nvolume_growth_by_hospital = { H9999 = 0.1 }\n[fund."nowhere"]\n'
    answer = _post(served, {"text": unknown})
    assert answer.status_code == 422 and "H9999" in answer.text and "nowhere" in answer.text
    assert len(served["server"].projections.index.items()) == before  # nothing was queued


def test_names_come_back_as_text_and_downloads_hold_them_as_text(served):
    title = '<img src=x onerror="window.injected=1">'
    text = f'[projection]\nname = "html"\ntitle = """{title}"""\nyears = 1\n'
    started = _post(served, {"text": text})
    assert started.status_code == 202, started.text
    served["server"].projections.wait()
    loaded = served["loaded"]
    other = sorted(h for h in loaded.hospital_ids if h != served["hospital"])[0]
    name, formula = loaded.names[other], '=HYPERLINK("http://evil.example","x")'
    loaded.names[other] = formula
    try:
        path = f"/api/projections/{started.json()['id']}"
        view = served["client"].get(path, headers=served["tokens"]["bureau"]).json()
        assert view["title"] == title  # data, as given: the page puts it as text
        assert formula in {r["name"] for r in view["hospitals"]}
        book = served["client"].get(f"{path}/hospitals.xlsx", headers=served["tokens"]["bureau"])
        from openpyxl import load_workbook

        sheet = load_workbook(io.BytesIO(book.content)).worksheets[0]
        cells = [c for row in sheet.iter_rows() for c in row if c.value == formula]
        assert cells and all(c.data_type == "s" for c in cells)  # a text cell, never a formula
        table = served["client"].get(f"{path}/hospitals.csv", headers=served["tokens"]["bureau"])
        names = {r["医院名称"] for r in csv.DictReader(table.content.decode("utf-8-sig").splitlines())}
        assert "'" + formula in names and formula not in names  # formula-like text prefixed with '
    finally:
        loaded.names[other] = name


def test_a_queued_projection_is_cancelled(served):
    client, token = served["client"], served["tokens"]["bureau"]
    first = _post(served, {"example": True, "years": 10, "draws": MAX_DRAWS})
    second = _post(served, {"example": True, "years": 3, "draws": 1})
    assert first.status_code == second.status_code == 202
    cancelled = client.post(f"/api/projections/{second.json()['id']}/cancel", headers=token)
    assert cancelled.status_code == 200
    client.post(f"/api/projections/{first.json()['id']}/cancel", headers=token)
    served["server"].projections.wait()
    second_state = client.get(f"/api/projections/{second.json()['id']}", headers=token).json()
    assert second_state["status"] == "cancelled" and "years_table" not in second_state
    assert client.get(f"/api/projections/{second.json()['id']}/years.csv", headers=token).status_code == 409
    listed = client.get(f"/api/regions/{served['region']}/projections", headers=token).json()["projections"]
    assert {second.json()["id"], served["projection"]} <= {p["id"] for p in listed}


def test_a_scenario_column_is_kept_and_summed_by_scenario():
    """Lever scenarios side by side (a `scenario` column, as issue 20's lever comparison adds): every row keeps
    it, the by-level sums are per scenario (by hand: 100.10 + 200.20 = 300.30; 50.05)."""

    class Bureau:
        is_bureau, hospital_id = True, None

    hospitals = pd.DataFrame({"scenario": ["none", "none", "reserve"], "year": [1, 1, 1],
                              "hospital_id": ["H1", "H2", "H1"], "level": ["三级甲等"] * 3, "type": ["综合"] * 3,
                              "cases": [3, 4, 3], "cmi": [1.0] * 3, "drifted": [0] * 3, "points": [10.0] * 3,
                              "cost": [1.0] * 3, "payment": [100.10, 200.20, 50.05],
                              "fund_payout": [100.10, 200.20, 50.05], "payment_ratio": [1.0] * 3})
    rows = server_projections.by_level(hospitals)
    assert rows == [{"scenario": "none", "year": 1, "level": "三级甲等", "hospitals": 2, "cases": 7,
                     "payment": "300.30", "fund_payout": "300.30"},
                    {"scenario": "reserve", "year": 1, "level": "三级甲等", "hospitals": 1, "cases": 3,
                     "payment": "50.05", "fund_payout": "50.05"}]
    assert server_projections.table_rows("by_level", {"hospitals": hospitals}, {}, Bureau())[0] == rows  # download
    later_first = hospitals.assign(scenario=["zeta", "zeta", "alpha"])  # the file's order, not the names'
    assert [r["scenario"] for r in server_projections.by_level(later_first)] == ["zeta", "alpha"]
    listed, columns = server_projections.table_rows("hospitals", {"hospitals": hospitals}, {"H1": "甲"}, Bureau())
    assert [r["scenario"] for r in listed] == ["none", "none", "reserve"] and columns[0][0] == "scenario"
    plain, columns = server_projections.table_rows("hospitals", {"hospitals": hospitals.drop(columns="scenario")},
                                                   {}, Bureau())
    assert "scenario" not in plain[0] and columns[0][0] == "year"
