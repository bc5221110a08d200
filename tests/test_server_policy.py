"""The 政策参数 page's API: a scenario file saved from the server (POST /api/regions/{region}/scenario.toml) with the
region's baseline (GET /api/regions/{region}/policy.toml) gives, under `dipsim scenarios run`, the same payouts to the
fen as the server's runs of the same variants; a scenario file read back (POST .../scenario/parse) as data only,
checked with the command line's messages; a hospital account neither saves nor reads the baseline file, and sees no
other hospital's coefficient. Skipped without the server extra."""

from __future__ import annotations

import csv
import tomllib
from decimal import Decimal

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("argon2")
pytest.importorskip("httpx")

import tomli_w
from fastapi.testclient import TestClient

from dipsim.cli import main
from dipsim.policy import PARAMETERS, PolicyError
from dipsim.scenarios import load_scenarios
from dipsim.server import create_app
from dipsim.server.accounts import User
from dipsim.server.app import MAX_SCENARIO_VARIANTS, _policy_values
from dipsim.server.regions import CASES_DIR, CATALOG_DIR, HOSPITALS_FILE, POLICY_FILE

TCM = "coefficient.tcm_hospital_bonus"
VARIANTS = [{"name": "中医加成 12%", "set": {TCM: 0.12}},
            {"name": "超高界值 1.6", "set": {"outlier.high_ratio": 1.6, "outlier.low_ratio": 0.4}}]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The demo region (small) whose baseline gives two hospitals coefficients of their own (one the hospital
    account's), the server restarted on it, the two demo accounts logged in."""
    data = tmp_path_factory.mktemp("policy") / "data"
    first = create_app(data, demo=True, demo_cases=3000, demo_hospitals=12)
    passwords = dict(first.state.server.demo_passwords)
    region = next(iter(dict(first.state.server.data.regions.items())))
    own = first.state.server.accounts.get("hospital").hospital_id
    other = sorted(h for h in first.state.server.region(region).hospital_ids if h != own)[0]
    folder = data / "regions" / region
    policy = tomllib.loads((folder / POLICY_FILE).read_text(encoding="utf-8"))
    policy.setdefault("coefficient", {})["hospital"] = {own: 1.02, other: 0.97}
    (folder / POLICY_FILE).write_text(tomli_w.dumps(policy), encoding="utf-8")
    app = create_app(data)  # a restart: the region loaded again, with the coefficients
    client = TestClient(app)
    tokens = {}
    for name, password in passwords.items():
        answer = client.post("/api/login", json={"username": name, "password": password})
        tokens[name] = {"Authorization": f"Bearer {answer.json()['token']}"}
    return {"app": app, "server": app.state.server, "client": client, "tokens": tokens, "region": region,
            "folder": folder, "own": own, "other": other}


def _fen(text) -> int:
    value = Decimal(str(text)) * 100
    assert value == value.to_integral_value(), text
    return int(value)


def _post_scenario(served, body, user="bureau"):
    return served["client"].post(f"/api/regions/{served['region']}/scenario.toml", headers=served["tokens"][user],
                                 json=body)


def _parse(served, text: str, user="bureau"):
    return served["client"].post(f"/api/regions/{served['region']}/scenario/parse", headers=served["tokens"][user],
                                 json={"text": text})


def _scenarios_run(tmp_path, scenario_file, folder) -> dict[tuple[str, str, str], int]:
    """`dipsim scenarios run` of a scenario file on the region's files: {(scenario, hospital, pool): fen}."""
    assert main(["scenarios", "run", str(scenario_file), "--cases", str(folder / CASES_DIR), "--hospitals",
                 str(folder / HOSPITALS_FILE), "--catalog", str(folder / CATALOG_DIR), "-o", str(tmp_path / "out"),
                 "--no-report", "-q"]) == 0
    with open(tmp_path / "out" / "hospitals.csv", encoding="utf-8-sig") as f:
        return {(r["scenario"], r["hospital_id"], r["pool"]): _fen(r["fund_payout"]) for r in csv.DictReader(f)}


# ---------------------------------------------------------------- the round trip


def test_a_scenario_saved_from_the_page_gives_the_servers_numbers_under_scenarios_run(served, tmp_path, capsys):
    """Save two variants as a scenario file, save the region's baseline beside it, run `dipsim scenarios run` on
    the region's files: every hospital's payout under each variant equals the server's run of it, to the fen."""
    client, bureau, region = served["client"], served["tokens"]["bureau"], served["region"]
    saved = _post_scenario(served, {"title": "中医加成与偏差病例", "variants": VARIANTS})
    assert saved.status_code == 200, saved.text
    assert saved.headers["content-type"].startswith("application/toml")
    assert saved.headers["content-disposition"] == f'attachment; filename="scenario_{region}.toml"'
    text = saved.text
    assert text.startswith("# dipsim scenario file") and f"region {region}" in text.splitlines()[0]
    assert "policy.toml" in text.splitlines()[1] and "baseline" in text.splitlines()[1]
    parsed = tomllib.loads(text)
    assert parsed["scenario"] == {"name": "workbench", "title": "中医加成与偏差病例", "baseline": "policy.toml"}
    assert parsed["variant"] == VARIANTS
    baseline = client.get(f"/api/regions/{region}/policy.toml", headers=bureau)
    assert baseline.status_code == 200 and baseline.content == (served["folder"] / POLICY_FILE).read_bytes()
    assert baseline.headers["content-disposition"] == 'attachment; filename="policy.toml"'
    (tmp_path / "scenario.toml").write_text(text, encoding="utf-8")
    (tmp_path / "policy.toml").write_bytes(baseline.content)

    cli = _scenarios_run(tmp_path, tmp_path / "scenario.toml", served["folder"])
    capsys.readouterr()
    assert {k[0] for k in cli} == {"baseline", *(v["name"] for v in VARIANTS)}
    for variant in VARIANTS:
        run = client.post(f"/api/regions/{region}/runs", headers=bureau, json=variant)
        assert run.status_code == 202, run.text
        served["server"].runs.wait()
        rows = client.get(f"/api/runs/{run.json()['id']}/hospitals", headers=bureau).json()["hospitals"]
        assert len(rows) * (len(VARIANTS) + 1) == len(cli) and len(rows) >= 12
        moved = 0
        for r in rows:
            key = (r["hospital_id"], r["pool"])
            assert _fen(r["baseline_payout"]) == cli[("baseline", *key)], key
            assert _fen(r["payout"]) == cli[(variant["name"], *key)], (variant["name"], key)
            moved += abs(_fen(r["payout"]) - _fen(r["baseline_payout"]))
        assert moved > 0, variant  # each variant moves money
    # the baseline's own hospital coefficients went through the file too
    assert load_scenarios(tmp_path / "scenario.toml").baseline.get("coefficient.hospital") == {
        served["own"]: 1.02, served["other"]: 0.97}


def test_a_saved_file_reads_back_into_the_form(served):
    """What the page saves, it loads: the same title, variant names and values; a variant without a name is named
    by its changes, as the command line names it."""
    body = {"title": "t", "variants": [*VARIANTS, {"set": {"tcm.same_price": False}},
                                       {"name": "hospitals", "set": {"coefficient.hospital": {"H0001": 1.1},
                                                                     "cycle.quality_schedule": [[90, 1.0], [0, 0.5]],
                                                                     "budget.scale": {"2025-01-01": 1.0,
                                                                                      "2025-07-01": 1.05}}}]}
    text = _post_scenario(served, body).text
    answer = _parse(served, text)
    assert answer.status_code == 200, answer.text
    got = answer.json()
    assert got["title"] == "t" and got["notes"] == [
        "[scenario] baseline = 'policy.toml' is not read: the variants are checked and run on this region's "
        "baseline policy"]
    assert [v["name"] for v in got["variants"]] == ["中医加成 12%", "超高界值 1.6", "same_price=False", "hospitals"]
    assert [v["named"] for v in got["variants"]] == [True, True, False, True]
    assert [v["set"] for v in got["variants"]] == [v["set"] for v in body["variants"]]
    # a [sweep] is expanded into its variants, named as the command line names them
    sweep = _parse(served, '[sweep]\n"coefficient.tcm_hospital_bonus" = [0.05, 0.1]\n"tcm.same_price" = [true]\n')
    assert [(v["name"], v["set"]) for v in sweep.json()["variants"]] == [
        ("tcm_hospital_bonus=0.05, same_price=True", {TCM: 0.05, "tcm.same_price": True}),
        ("tcm_hospital_bonus=0.1, same_price=True", {TCM: 0.1, "tcm.same_price": True})]
    assert sweep.json()["notes"] == ["the [sweep] is expanded into 2 variant(s)"]
    assert sweep.json()["sweep_variants"] == 2 and sweep.json()["baseline_ignored"] is None
    assert got["baseline_ignored"] == "policy.toml" and got["sweep_variants"] == 0


# ---------------------------------------------------------------- checks, with the command line's messages


def _cli_problems(tmp_path, body: str) -> list[str]:
    """The problems `load_scenarios` (the command line) finds in a scenario file of `body` on the region's
    baseline."""
    path = tmp_path / "cli.toml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(PolicyError) as error:
        load_scenarios(path, baseline=None)
    return error.value.problems


def test_bad_toml_is_refused_with_the_parsers_message_and_line(served):
    answer = _parse(served, '[scenario]\ntitle = "x"\n\n[[variant]]\nname = "a"\nset = { "budget.scale" = 1.05 \n')
    assert answer.status_code == 422
    detail = answer.json()["detail"]
    assert detail["message"].startswith("the scenario file: not valid TOML (") and "line 6" in detail["message"]
    assert detail["problems"] == [detail["message"]]
    deep = _parse(served, "x = " + "[" * 20_000)
    assert deep.status_code == 422 and "not valid TOML" in deep.json()["detail"]["message"]
    shape = _parse(served, 'variant = 3\n')
    assert shape.status_code == 422 and "each [[variant]] must be a table" in shape.json()["detail"]["message"]


def test_unknown_parameters_and_values_out_of_bounds_get_the_command_lines_messages(served, tmp_path):
    body = ('[[variant]]\nname = "a"\nset = { "outlier.hgh_ratio" = 2.0, "coefficient.tcm_hospital_bonus" = 1.5 }\n'
            '[[variant]]\nname = "b"\nset = { "budget.point_value_floor" = 1.2, "budget.point_value_cap" = 1.1, '
            '"review.long_stay_days" = 2.5 }\n[[variant]]\nname = "a"\n')
    answer = _parse(served, body)
    assert answer.status_code == 422
    problems = answer.json()["detail"]["problems"]
    cli = _cli_problems(tmp_path, f'[scenario]\nbaseline = "{(served["folder"] / POLICY_FILE).as_posix()}"\n' + body)
    assert problems == cli and len(problems) == 5
    assert "variant 'a': outlier.hgh_ratio: unknown parameter (did you mean outlier.high_ratio?)" in problems
    assert "variant 'a': coefficient.tcm_hospital_bonus: 1.5 is above the maximum 1.0 share added" in problems
    assert "variant 'b': review.long_stay_days: expected a whole number, not 2.5" in problems
    assert "variant 'a': the name is used twice" in problems
    # saving the same variants: the same messages
    saved = _post_scenario(served, {"variants": [
        {"name": "a", "set": {"outlier.hgh_ratio": 2.0, TCM: 1.5}},
        {"name": "b", "set": {"budget.point_value_floor": 1.2, "budget.point_value_cap": 1.1,
                              "review.long_stay_days": 2.5}}, {"name": "a", "set": {}}]})
    assert saved.status_code == 422 and saved.json()["detail"]["problems"] == cli
    # a value TOML cannot hold (null) is a problem of its parameter, not a server error
    null = _post_scenario(served, {"variants": [{"name": "n", "set": {TCM: None}}]})
    assert null.status_code == 422
    assert null.json()["detail"]["problems"] == ["variant 'n': coefficient.tcm_hospital_bonus: expected a number, "
                                                 "not None"]


def test_too_many_variants_are_refused_before_they_are_built(served):
    grid = "".join(f'"{p}" = [{", ".join(str(1 + i / 100) for i in range(10))}]\n'
                   for p in ("outlier.high_ratio", "outlier.extreme_ratio", "budget.scale"))
    answer = _parse(served, "[sweep]\n" + grid)
    assert answer.status_code == 422
    assert answer.json()["detail"]["message"] == (
        f"the scenario file: 1,000 variants (0 named + the sweep's 10 outlier.high_ratio x 10 outlier.extreme_ratio "
        f"x 10 budget.scale) are more than {MAX_SCENARIO_VARIANTS}: narrow the sweep")
    named = "".join(f'[[variant]]\nname = "v{i}"\nset = {{ "budget.scale" = 1.0{i} }}\n'
                    for i in range(MAX_SCENARIO_VARIANTS + 1))
    answer = _parse(served, named)
    assert answer.status_code == 422 and answer.json()["detail"]["message"] == (
        f"the scenario file: {MAX_SCENARIO_VARIANTS + 1} variants (all named) are more than {MAX_SCENARIO_VARIANTS}: "
        "keep fewer")
    saved = _post_scenario(served, {"variants": [{"name": f"v{i}", "set": {}}
                                                 for i in range(MAX_SCENARIO_VARIANTS + 1)]})
    assert saved.status_code == 422 and "are more than" in saved.json()["detail"]["message"]
    assert _parse(served, named.split("[[variant]]\nname = \"v50\"")[0]).status_code == 200  # 50 is allowed


def test_the_files_baseline_is_never_read(served, monkeypatch):
    """`[scenario] baseline` of an uploaded file names a path on the server's machine: it is reported, not read;
    the region's baseline is used."""
    def refuse(*args, **kwargs):
        raise AssertionError("a file was read")

    monkeypatch.setattr("dipsim.scenarios.load_policy", refuse)
    monkeypatch.setattr("dipsim.scenarios.read_toml", refuse)
    monkeypatch.setattr("dipsim.policy.read_toml", refuse)
    answer = _parse(served, '[scenario]\nbaseline = "../../etc/passwd"\n[[variant]]\nname = "a"\n'
                            'set = { "budget.scale" = 1.05 }\n')
    assert answer.status_code == 200, answer.text
    assert answer.json()["notes"][0].startswith("[scenario] baseline = '../../etc/passwd' is not read")
    assert "root:" not in answer.text
    bad = _parse(served, '[scenario]\nbaseline = ["/etc/passwd"]\n')
    assert bad.status_code == 422 and "baseline must be the policy file's name" in bad.text


def test_html_in_a_variant_name_is_returned_as_data(served):
    name = '<img src=x onerror="alert(1)">方案</td>'
    answer = _parse(served, tomli_w.dumps({"variant": [{"name": name, "set": {TCM: 0.1}}], "scenario": {
        "title": "<script>alert(2)</script>"}}))
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    assert answer.json()["variants"][0]["name"] == name
    assert answer.json()["title"] == "<script>alert(2)</script>"
    # and saved back into a file: a TOML string, not TOML made of it
    saved = _post_scenario(served, {"title": 'x"\n[scenario]\nbaseline = "/etc/passwd"',
                                    "variants": [{"name": name + '"\n[sweep]', "set": {TCM: 0.1}}]})
    assert saved.status_code == 200, saved.text
    parsed = tomllib.loads(saved.text)
    assert parsed["scenario"]["baseline"] == "policy.toml" and "sweep" not in parsed
    assert parsed["variant"][0]["name"] == name + '"\n[sweep]'


def test_a_body_over_the_limit_gets_413(served):
    text = "# " + "x" * 70_000 + "\n"
    assert _parse(served, text).status_code == 413


# ---------------------------------------------------------------- scope


def test_a_hospital_account_neither_saves_nor_reads_the_baseline_file(served):
    client, region = served["client"], served["region"]
    hospital = served["tokens"]["hospital"]
    refused = client.get(f"/api/regions/{region}/policy.toml", headers=hospital)
    assert refused.status_code == 403 and served["other"] not in refused.text
    assert _post_scenario(served, {"variants": VARIANTS}, user="hospital").status_code == 403
    assert client.get(f"/api/regions/{region}/policy.toml").status_code == 401
    # reading a scenario file it has is its own data
    assert _parse(served, '[[variant]]\nname = "a"\nset = { "budget.scale" = 1.05 }\n',
                  user="hospital").status_code == 200
    # the parameters: its own coefficient, no other hospital's; the bureau sees both
    mine = client.get(f"/api/regions/{region}/parameters", headers=hospital)
    assert served["other"] not in mine.text
    by_path = {p["path"]: p for p in mine.json()["parameters"]}
    assert by_path["coefficient.hospital"]["value"] == {served["own"]: 1.02}
    every = client.get(f"/api/regions/{region}/parameters", headers=served["tokens"]["bureau"]).json()
    assert {p["path"]: p for p in every["parameters"]}["coefficient.hospital"]["value"] == {
        served["own"]: 1.02, served["other"]: 0.97}


def test_a_hospital_sees_its_own_dated_coefficient_only():
    hospital = User(name="h", role="hospital", hospital_id="H0002")
    dated = {"coefficient.hospital": {"2025-01-01": {"H0001": 1.1, "H0002": 0.9}, "2025-07-01": {"H0001": 1.2}}}
    assert _policy_values(dated, hospital) == {"coefficient.hospital": {"2025-01-01": {"H0002": 0.9},
                                                                        "2025-07-01": {}}}
    assert _policy_values({"coefficient.hospital": {"H0001": 1.1, "H0002": 0.9}}, hospital) == {
        "coefficient.hospital": {"H0002": 0.9}}
    bureau = User(name="b", role="bureau", hospital_id=None)
    assert _policy_values(dated, bureau) is dated


def test_the_parameters_come_with_their_texts_in_both_languages(served):
    answer = served["client"].get(f"/api/regions/{served['region']}/parameters", headers=served["tokens"]["bureau"])
    items = answer.json()["parameters"]
    assert [p["path"] for p in items] == list(PARAMETERS)
    for p in items:
        assert p["label"] and p["label_en"] and p["doc"] and p["doc_zh"] and p["section"] == p["path"].split(".")[0]
    tcm = next(p for p in items if p["path"] == TCM)
    assert (tcm["label"], tcm["label_en"]) == ("中医医院加成", "TCM hospital bonus")


def test_the_page_is_served_and_puts_values_in_as_text_only(served):
    """policy.js and policy.css come from this server, after app.js, under the pages' Content-Security-Policy;
    the page inserts nothing as HTML and loads nothing from elsewhere."""
    import re

    from dipsim.server.workbench import STATIC_DIR

    page = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    assert page.index('src="app.js"') < page.index('src="policy.js"') and 'href="policy.css"' in page
    for path in ("/app/policy.js", "/app/policy.css"):
        answer = served["client"].get(path)
        assert answer.status_code == 200 and "script-src 'self';" in answer.headers["content-security-policy"]
    script = (STATIC_DIR / "policy.js").read_text(encoding="utf-8")
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function", script)
    assert not re.search(r"https?://", script) and "localStorage" not in script
