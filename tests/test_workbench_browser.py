"""The workbench in a real browser: Debian's Chromium driven by Selenium against `dipsim serve` (uvicorn in a thread,
on 127.0.0.1 and a free port) on a small demo region. The bureau logs in, opens the region, raises the TCM bonus,
runs, and reads the hospital table and the chart, whose numbers equal the API's and `dipsim scenarios run`'s to the
fen; a hospital account sees only its own hospital. Every page is saved as a screenshot (under $DIPSIM_SCREENSHOTS
when set, else the test's tmp folder). Skipped, with the reason, without selenium, chromium or chromedriver."""

from __future__ import annotations

import base64
import csv
import json
import os
import shutil
import socket
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("argon2")
pytest.importorskip("httpx")
pytest.importorskip("uvicorn")
pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[test]')")

import httpx
import uvicorn
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from dipsim.cli import main
from dipsim.server import create_app
from dipsim.server.regions import CASES_DIR, CATALOG_DIR, HOSPITALS_FILE, POLICY_FILE

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
if CHROMIUM is None or CHROMEDRIVER is None:
    pytest.skip("chromium and chromedriver are not installed (apt-get install chromium chromium-driver)",
                allow_module_level=True)

TCM = "coefficient.tcm_hospital_bonus"
HTML_NAME = '<b id="injected">名</b>&amp;<script>window.injected = 1</script>'  # a hospital name that is HTML


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _fen(text: str) -> int:
    """Yuan as written on the page or by the API ("1,234.50", "-3.10") as whole fen, exactly."""
    value = Decimal(text.replace(",", "")) * 100
    assert value == value.to_integral_value(), text
    return int(value)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The demo region (small) behind uvicorn in a thread; the demo accounts' passwords."""
    data = tmp_path_factory.mktemp("browser") / "data"
    app = create_app(data, demo=True, demo_cases=3000, demo_hospitals=12)
    server = app.state.server
    port = _free_port()
    web = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=web.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not web.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    region = next(iter(dict(server.data.regions.items())))
    yield {"base": f"http://127.0.0.1:{port}", "server": server, "region": region,
           "passwords": dict(server.demo_passwords), "folder": data / "regions" / region,
           "hospital": server.accounts.get("hospital").hospital_id}
    web.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = Path(os.environ["DIPSIM_SCREENSHOTS"]) if os.environ.get("DIPSIM_SCREENSHOTS") \
        else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1400,1100", "--lang=zh-CN", "--no-first-run", "--disable-extensions"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    except WebDriverException as exc:  # a Chromium that cannot start here (no display libraries, ...)
        pytest.skip(f"chromium did not start: {exc.msg}")
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def _wait(driver, condition, timeout: float = 30):
    return WebDriverWait(driver, timeout).until(condition)


def _shot(driver, folder: Path, name: str) -> None:
    """The whole page (beyond the window), as Chromium's DevTools capture it."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 6000), "scale": 1}
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True,
                                                              "clip": clip})
    (folder / f"{name}.png").write_bytes(base64.b64decode(shot["data"]))


def _login(driver, served, name: str, shots: Path) -> None:
    driver.get(f"{served['base']}/")  # redirected to /app/
    _wait(driver, ec.presence_of_element_located((By.ID, "login-user"))).send_keys(name)
    driver.find_element(By.ID, "login-password").send_keys(served["passwords"][name])
    _shot(driver, shots, f"0-login-{name}")
    driver.find_element(By.ID, "login-submit").click()
    _wait(driver, ec.presence_of_element_located((By.ID, "card-cases")))


def _open(driver, served, hash_: str, ready: str) -> None:
    driver.execute_script("location.hash = arguments[0]", hash_)
    _wait(driver, ec.presence_of_element_located((By.CSS_SELECTOR, ready)))


def _table(driver, table_id: str) -> list[dict[str, str]]:
    """The rows of a table on the page as {data-col: the cell's text}, in the order shown."""
    return driver.execute_script(
        "return [...document.querySelectorAll(`#${arguments[0]} tbody tr`)].map(tr => Object.fromEntries("
        "[...tr.children].map(td => [td.dataset.col, td.textContent])))", table_id)


def _api(served, name: str):
    token = httpx.post(f"{served['base']}/api/login", json={"username": name,
                                                              "password": served["passwords"][name]}).json()["token"]
    return httpx.Client(base_url=f"{served['base']}/api", headers={"Authorization": f"Bearer {token}"})


def _severe_logs(driver) -> list[str]:
    """Console errors of the page (a refused script, a failed request, a JavaScript error); a 403 the test asked
    for is said by the caller."""
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def _cli_payouts(tmp_path, folder: Path, name: str, bonus: float) -> dict[tuple[str, str], int]:
    """`dipsim scenarios run` of the same variant on the server region's files: {(hospital, pool): fen}."""
    path = tmp_path / "variant.toml"
    path.write_text(f'[scenario]\nname = "browser"\nbaseline = {json.dumps(str(folder / POLICY_FILE))}\n\n'
                    f'[[variant]]\nname = {json.dumps(name)}\nset = {{ "{TCM}" = {bonus} }}\n', encoding="utf-8")
    assert main(["scenarios", "run", str(path), "--cases", str(folder / CASES_DIR), "--hospitals",
                 str(folder / HOSPITALS_FILE), "--catalog", str(folder / CATALOG_DIR), "-o", str(tmp_path / "out"),
                 "--no-report", "-q"]) == 0
    with open(tmp_path / "out" / "hospitals.csv", encoding="utf-8-sig") as f:
        return {(r["hospital_id"], r["pool"]): _fen(r["fund_payout"]) for r in csv.DictReader(f)
                if r["scenario"] == name}


def test_bureau_raises_the_tcm_bonus_and_reads_every_hospitals_payout(served, browser, shots, tmp_path, capsys):
    region, driver = served["region"], browser
    loaded = served["server"].region(region)
    other = sorted(h for h in loaded.hospital_ids if h != served["hospital"])[0]
    loaded.names[other] = HTML_NAME  # shown as text wherever it appears, never run

    _login(driver, served, "bureau", shots)
    assert driver.current_url.startswith(f"{served['base']}/app/")
    assert driver.find_element(By.ID, "card-cases").text.endswith("3,000")
    levels = [r["level"] for r in _table(driver, "by-level")]
    order = ["三级甲等", "三级乙等", "三级", "二级甲等", "二级乙等", "二级", "一级"]
    assert levels == sorted(levels, key=order.index) and len(levels) >= 2
    budget = driver.find_element(By.ID, "card-budget").text
    assert ("万元" in budget or "亿元" in budget) and "e+" not in budget.lower()
    _wait(driver, lambda d: d.execute_script(
        "return !!echarts.getInstanceByDom(document.getElementById('level-chart'))"))
    _shot(driver, shots, "1-overview-bureau")

    # 情景对比: the form from the parameter registry, the TCM bonus raised, run
    _open(driver, served, f"#/compare/{region}", f'[data-path="{TCM}"]')
    block = driver.find_element(By.CSS_SELECTOR, f'[data-param="{TCM}"]')
    assert "中医医院加成" in block.text and "share" in block.text  # label, unit and meaning shown
    field = driver.find_element(By.CSS_SELECTOR, f'[data-path="{TCM}"]')
    baseline_bonus = float(field.get_attribute("value"))
    _shot(driver, shots, "2-compare-form")
    field.clear()
    field.send_keys("-1")  # refused on the page before anything is sent
    driver.find_element(By.ID, "run-button").click()
    assert "中医医院加成" in driver.find_element(By.ID, "run-status").text
    bonus = round(baseline_bonus + 0.1, 6)
    field.clear()
    field.send_keys(str(bonus))
    driver.find_element(By.ID, "variant-name").send_keys("中医加成提高")
    driver.find_element(By.ID, "run-button").click()
    _wait(driver, ec.presence_of_element_located((By.CSS_SELECTOR, "#hospital-table tbody tr")))
    run_id = driver.find_element(By.ID, "run-title").get_attribute("data-run")
    _wait(driver, lambda d: d.execute_script(
        "return !!echarts.getInstanceByDom(document.getElementById('change-chart'))"))
    _shot(driver, shots, "3-compare-result")

    assert driver.find_element(By.ID, "run-set").text == f"中医医院加成（{TCM}）= {bonus}"
    rows = _table(driver, "hospital-table")
    api = _api(served, "bureau")
    answer = api.get(f"/runs/{run_id}/hospitals").json()["hospitals"]
    assert len(rows) == len(answer) and {r["hospital_id"] for r in rows} == set(loaded.hospital_ids)
    assert len(loaded.hospital_ids) == 12  # one row per hospital and pool (insurance scheme)
    cli = _cli_payouts(tmp_path, served["folder"], "中医加成提高", bonus)
    capsys.readouterr()
    for shown in rows:
        truth = next(a for a in answer if a["hospital_id"] == shown["hospital_id"] and a["pool"] == shown["pool"])
        assert _fen(shown["payout"]) == _fen(truth["payout"]) == cli[(shown["hospital_id"], shown["pool"])]
        assert _fen(shown["baseline_payout"]) == _fen(truth["baseline_payout"])
        assert _fen(shown["change"]) == _fen(shown["payout"]) - _fen(shown["baseline_payout"])
        assert "e+" not in shown["payout"].lower() and "," in shown["payout"]
        # a fixed budget: raising the TCM bonus moves money to the TCM hospitals, from the others
        change = _fen(shown["change"])
        assert change > 0 if shown["type"] == "中医" else change <= 0, shown
    assert any(r["type"] == "中医" for r in rows)
    # the HTML in a name is text on the page: no element made of it, no script run
    assert any(r["name"] == HTML_NAME for r in rows)
    assert not driver.find_elements(By.ID, "injected") and driver.execute_script("return window.injected") is None
    # sorted by change, the largest loss first; the chart shows each hospital's change, in the same order
    changes = [_fen(r["change"]) for r in rows]
    assert changes == sorted(changes) and changes[0] < 0 < changes[-1]
    chart = driver.execute_script("const o = echarts.getInstanceByDom(document.getElementById('change-chart'))"
                                  ".getOption(); const c = o.yAxis[0].type === 'category' ? o.yAxis[0] : o.xAxis[0];"
                                  "return [c.data, o.series[0].data.map(d => d.value)]")
    assert [round(v * 100) for v in chart[1]] == changes
    assert chart[0] == [f'{r["name"]} · {r["pool"]}' for r in rows]
    # hovering a bar shows its hospital and the exact yuan; the name, HTML, stays text in the tooltip too
    driver.execute_script("echarts.getInstanceByDom(document.getElementById('change-chart'))"
                          ".dispatchAction({type: 'showTip', seriesIndex: 0, dataIndex: 0})")
    tip = _wait(driver, lambda d: next((e for e in d.find_elements(By.CSS_SELECTOR, "#change-chart div")
                                        if rows[0]["change"] in e.text), None))
    assert HTML_NAME in tip.text and not driver.find_elements(By.ID, "injected")
    # point values: the variant's against the API's
    point_values = {p["pool"]: p for p in api.get(f"/runs/{run_id}").json()["point_values"]}
    for shown in _table(driver, "point-values"):
        assert Decimal(shown["variant"].replace(",", "")) == round(Decimal(repr(point_values[shown["pool"]]
                                                                                    ["variant"])), 4)

    # sort by payout (click twice: descending), filter by type and level, search by name
    header = driver.find_element(By.CSS_SELECTOR, '#hospital-table th[data-col="payout"]')
    header.click()
    header.click()
    payouts = [_fen(r["payout"]) for r in _table(driver, "hospital-table")]
    assert payouts == sorted(payouts, reverse=True)
    Select(driver.find_element(By.ID, "filter-type")).select_by_value("中医")
    assert {r["type"] for r in _table(driver, "hospital-table")} == {"中医"}
    Select(driver.find_element(By.ID, "filter-type")).select_by_value("")
    level = rows[0]["level"]
    Select(driver.find_element(By.ID, "filter-level")).select_by_value(level)
    filtered = _table(driver, "hospital-table")
    assert filtered and {r["level"] for r in filtered} == {level}
    assert len(driver.execute_script("return echarts.getInstanceByDom(document.getElementById('change-chart'))"
                                     ".getOption().series[0].data")) == len(filtered)
    Select(driver.find_element(By.ID, "filter-level")).select_by_value("")
    search = driver.find_element(By.ID, "filter-name")
    search.send_keys(rows[-1]["name"][:6])
    assert rows[-1]["hospital_id"] in [r["hospital_id"] for r in _table(driver, "hospital-table")]
    assert len(_table(driver, "hospital-table")) < len(rows)
    search.clear()
    assert len(_table(driver, "hospital-table")) == len(rows)

    # 医院详情 of a hospital, from its row: 病组盈亏, the largest loss first
    driver.find_element(By.CSS_SELECTOR, f'#hospital-table tr[data-hospital="{other}"] a').click()
    _wait(driver, ec.presence_of_element_located((By.ID, "groups-table")))
    groups = _table(driver, "groups-table")
    expected = api.get(f"/regions/{region}/hospitals/{other}").json()
    assert [g["group"] for g in groups] == [g["group"] for g in expected["groups"]]
    balances = [_fen(g["balance"]) for g in groups]
    assert balances == sorted(balances) and balances == [_fen(g["balance"]) for g in expected["groups"]]
    assert driver.find_element(By.ID, "hospital-name").text.startswith(HTML_NAME)
    _shot(driver, shots, "4-hospital-bureau")

    # English
    driver.find_element(By.ID, "lang-switch").click()
    _wait(driver, lambda d: "Hospital" in d.find_element(By.ID, "page-title").text)
    _open(driver, served, f"#/compare/{region}/{run_id}", "#hospital-table tbody tr")
    assert driver.find_element(By.CSS_SELECTOR, '#hospital-table th[data-col="payout"]').text == \
        "variant payout (yuan)"
    time.sleep(0.5)  # a page still loading from the visit before must not draw onto this one
    assert not driver.find_elements(By.ID, "groups-table") and len(driver.find_elements(By.ID, "page-title")) == 1
    _shot(driver, shots, "5-compare-english")
    driver.find_element(By.ID, "lang-switch").click()
    assert _severe_logs(driver) == []


def test_a_hospital_account_sees_only_its_own_hospital(served, browser, shots):
    region, driver, own = served["region"], browser, served["hospital"]
    bureau = _api(served, "bureau")
    run = bureau.post(f"/regions/{region}/runs", json={"name": "中医加成 20%", "set": {TCM: 0.2}}).json()["id"]
    served["server"].runs.wait()
    _login(driver, served, "hospital", shots)
    assert own in driver.find_element(By.ID, "who").text
    _shot(driver, shots, "6-overview-hospital")

    _open(driver, served, f"#/compare/{region}/{run}", "#hospital-table tbody tr")
    assert not driver.find_elements(By.ID, "run-button")  # runs are the bureau's
    rows = _table(driver, "hospital-table")
    assert rows and {r["hospital_id"] for r in rows} == {own}
    truth = bureau.get(f"/runs/{run}/hospitals").json()["hospitals"]
    for shown in rows:
        assert _fen(shown["payout"]) == _fen(next(h for h in truth if (h["hospital_id"], h["pool"]) ==
                                                  (own, shown["pool"]))["payout"])
    others = {h["hospital_id"] for h in truth} - {own}
    names = {h["name"] for h in truth if h["hospital_id"] != own}
    text = driver.find_element(By.TAG_NAME, "body").text
    assert not any(h in text for h in others) and not any(n in text for n in names)
    _shot(driver, shots, "7-compare-hospital")

    _open(driver, served, f"#/hospital/{region}/", "#groups-table")
    assert driver.find_element(By.ID, "hospital-name").text.endswith(f"（{own}）")
    case = served["server"].region(region).case_table
    import pyarrow.compute as pc

    case_id = case.filter(pc.equal(case["hospital_id"], own))["case_id"][0].as_py()
    driver.find_element(By.ID, "case-input").send_keys(case_id)
    driver.find_element(By.ID, "case-show").click()
    _wait(driver, lambda d: f"hospital {own}" in d.find_element(By.ID, "case-explain").text)
    _shot(driver, shots, "8-hospital-own")
    assert _severe_logs(driver) == []

    # another hospital's page: refused by the API, said on the page, nothing of it shown
    other = sorted(others)[0]
    _open(driver, served, f"#/hospital/{region}/{other}", "#page-error")
    assert "own hospital" in driver.find_element(By.ID, "page-error").text
    assert not driver.find_elements(By.ID, "groups-table")
    _shot(driver, shots, "9-hospital-other-refused")
