"""The workbench in a real browser: Debian's Chromium driven by Selenium against `dipsim serve` (uvicorn in a thread,
on 127.0.0.1 and a free port) on a small demo region. The bureau logs in, opens the region, raises the TCM bonus,
runs, and reads the hospital table and the chart, whose numbers equal the API's and `dipsim scenarios run`'s to the
fen; a hospital account sees only its own hospital. Every page is saved as a screenshot (under $DIPSIM_SCREENSHOTS
when set, else the test's tmp folder). Skipped, with the reason, without selenium, chromium or chromedriver."""

from __future__ import annotations

import base64
import contextlib
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
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
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


@contextlib.contextmanager
def serve_in_thread(app):
    """`app` behind uvicorn on a free port of 127.0.0.1, in a thread: its base URL. On exit uvicorn stops, then the
    server's workers (`Server.close`)."""
    port = _free_port()
    web = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=web.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not web.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        web.should_exit = True
        thread.join(10)
        app.state.server.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The demo region (small) behind uvicorn in a thread; the demo accounts' passwords."""
    data = tmp_path_factory.mktemp("browser") / "data"
    app = create_app(data, demo=True, demo_cases=3000, demo_hospitals=12)
    server = app.state.server
    region = next(iter(dict(server.data.regions.items())))
    with serve_in_thread(app) as base:
        yield {"base": base, "server": server, "region": region,
               "passwords": dict(server.demo_passwords), "folder": data / "regions" / region,
               "hospital": server.accounts.get("hospital").hospital_id}


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = Path(os.environ["DIPSIM_SCREENSHOTS"]) if os.environ.get("DIPSIM_SCREENSHOTS") \
        else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def downloads_dir(tmp_path) -> Path:
    folder = tmp_path / "downloads"
    folder.mkdir()
    return folder


@pytest.fixture
def browser(downloads_dir):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads_dir),
                                              "download.prompt_for_download": False})
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1400,1100", "--lang=zh-CN", "--no-first-run", "--disable-extensions"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    except WebDriverException as exc:  # a Chromium that cannot start here (no display libraries, ...)
        pytest.skip(f"chromium did not start: {exc.msg}")
    driver.set_page_load_timeout(30)
    # headless Chromium saves downloads only where DevTools says so
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads_dir)})
    yield driver
    driver.quit()


def _wait(driver, condition, timeout: float = 30):
    """Until `condition`; an element the page redrew meanwhile is looked up again."""
    return WebDriverWait(driver, timeout, ignored_exceptions=[StaleElementReferenceException]).until(condition)


def _shot(driver, folder: Path, name: str) -> None:
    """The whole page (beyond the window), as Chromium's DevTools capture it."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 6000), "scale": 1}
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True,
                                                              "clip": clip})
    (folder / f"{name}.png").write_bytes(base64.b64decode(shot["data"]))


def _login(driver, served, name: str, shots: Path) -> float:
    """Log in on the page; the seconds from the click to the overview's first card."""
    driver.get(f"{served['base']}/")  # redirected to /app/
    _wait(driver, ec.presence_of_element_located((By.ID, "login-user"))).send_keys(name)
    driver.find_element(By.ID, "login-password").send_keys(served["passwords"][name])
    _shot(driver, shots, f"0-login-{name}")
    started = time.perf_counter()
    driver.find_element(By.ID, "login-submit").click()
    _wait(driver, ec.presence_of_element_located((By.ID, "card-cases")))
    return time.perf_counter() - started


def _downloaded(folder: Path, suffix: str, timeout: float = 30) -> Path:
    """The one file Chromium finished saving in `folder` (no .crdownload left) with that suffix."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = [p for p in folder.iterdir() if p.suffix == suffix]
        if done and not any(p.suffix == ".crdownload" for p in folder.iterdir()):
            return done[0]
        time.sleep(0.1)
    raise AssertionError(f"no {suffix} downloaded into {folder}: {sorted(p.name for p in folder.iterdir())}")


def _times_path(shots: Path) -> Path:
    """Where the page interaction times go: $DIPSIM_PAGE_TIMES, else page_times.json beside the screenshots."""
    return Path(os.environ["DIPSIM_PAGE_TIMES"]) if os.environ.get("DIPSIM_PAGE_TIMES") \
        else shots / "page_times.json"


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


def test_bureau_raises_the_tcm_bonus_and_reads_every_hospitals_payout(served, browser, shots, tmp_path, capsys,
                                                                     downloads_dir):
    region, driver = served["region"], browser
    loaded = served["server"].region(region)
    other = sorted(h for h in loaded.hospital_ids if h != served["hospital"])[0]
    loaded.names[other] = HTML_NAME  # shown as text wherever it appears, never run
    times = {"login_s": _login(driver, served, "bureau", shots)}  # page interaction times, seconds
    assert driver.current_url.startswith(f"{served['base']}/app/")
    # the overview, loaded afresh (scripts, labels, the region, the fund monitoring, the charts)
    driver.get("about:blank")  # leave the page (the token stays in the tab's sessionStorage), then load it again
    started = time.perf_counter()
    driver.get(f"{served['base']}/app/#/region/{region}")
    _wait(driver, ec.presence_of_element_located((By.CSS_SELECTOR, "#funds-table tbody tr")))
    _wait(driver, lambda d: d.execute_script(
        "return !!echarts.getInstanceByDom(document.getElementById('funds-chart'))"))
    times["overview_s"] = time.perf_counter() - started
    assert driver.find_element(By.ID, "card-cases").text.endswith("3,000")
    levels = [r["level"] for r in _table(driver, "by-level")]
    order = ["三级甲等", "三级乙等", "三级", "二级甲等", "二级乙等", "二级", "一级"]
    assert levels == sorted(levels, key=order.index) and len(levels) >= 2
    budget = driver.find_element(By.ID, "card-budget").text
    assert ("万元" in budget or "亿元" in budget) and "e+" not in budget.lower()
    _wait(driver, lambda d: d.execute_script(
        "return !!echarts.getInstanceByDom(document.getElementById('level-chart'))"))
    # the baseline's fund monitoring, by pool and month: the API's rows, money to the fen
    funds = _api(served, "bureau").get(f"/regions/{region}/funds").json()["funds"]
    shown_funds = _table(driver, "funds-table")
    assert len(shown_funds) == len(funds) >= 12
    assert [_fen(r["claims"]) for r in shown_funds] == [_fen(f["claims"]) for f in funds]
    assert driver.find_element(By.CSS_SELECTOR, '[data-download="funds.xlsx"]').is_displayed()
    _shot(driver, shots, "1-overview-bureau")

    # 情景对比: the form from the parameter registry, the TCM bonus raised, run
    _open(driver, served, f"#/compare/{region}", f'[data-path="{TCM}"]')
    block = driver.find_element(By.CSS_SELECTOR, f'[data-param="{TCM}"]')
    # label, unit and meaning shown in Chinese (the registry's label, doc_zh; the unit translated)
    assert "中医医院加成" in block.text and "加成比例" in block.text and "中医加成" in block.text
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
    started = time.perf_counter()
    driver.find_element(By.ID, "run-button").click()
    _wait(driver, ec.presence_of_element_located((By.CSS_SELECTOR, "#hospital-table tbody tr")))
    times["run_variant_s"] = time.perf_counter() - started
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
    # the hospital table's Excel, downloaded in the browser (fetch with the token, a Blob link): every hospital's
    # payout equal to `dipsim scenarios run`'s to the fen
    driver.find_element(By.CSS_SELECTOR, '[data-download="hospitals.xlsx"]').click()
    from openpyxl import load_workbook

    book = load_workbook(_downloaded(downloads_dir, ".xlsx"))
    sheet = list(book.worksheets[0].iter_rows(values_only=True))
    heads, cells = sheet[0], [dict(zip(sheet[0], r)) for r in sheet[1:]]
    assert "方案基金支付（元）" in heads and len(cells) == len(cli) == len(rows)
    for cell in cells:
        assert _fen(repr(cell["方案基金支付（元）"])) == cli[(cell["医院编码"], cell["统筹区-险种"])]
    assert {c["医院名称"] for c in cells} >= {HTML_NAME}  # the HTML name, as text
    driver.find_element(By.CSS_SELECTOR, '[data-download="hospitals.csv"]').click()
    with open(_downloaded(downloads_dir, ".csv"), encoding="utf-8-sig") as f:
        table = list(csv.DictReader(f))
    assert {(r["医院编码"], r["统筹区-险种"]): _fen(r["方案基金支付（元）"]) for r in table} == cli
    # the run's other tables: summary with the special-case review, by level (natural order), by type, pools
    view = api.get(f"/runs/{run_id}").json()
    summary = _table(driver, "summary-table")
    assert [r["scenario"] for r in summary] == ["基准", "中医加成提高"]
    assert [int(r["review_applied"].replace(",", "")) for r in summary] == \
        [view["summary"][k]["review_applied"] for k in ("baseline", "variant")]
    by_level = _table(driver, "run-by-level")
    assert [r["level"] for r in by_level] == [v["level"] for v in view["by_level"]]
    assert [_fen(r["change"]) for r in by_level] == [_fen(v["change"]) for v in view["by_level"]]
    by_type = _table(driver, "run-by-type")
    assert sum(_fen(r["change"]) for r in by_type) == 0 and {r["type"] for r in by_type} >= {"中医"}
    for name in ("point-values", "summary", "by-level", "by-type", "pools", "hospitals"):
        assert driver.find_elements(By.CSS_SELECTOR, f'[data-download="{name}"] a'), name
    _shot(driver, shots, "3b-compare-tables")
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
    started = time.perf_counter()
    header.click()
    _wait(driver, lambda d: "sorted-asc" in header.get_attribute("class"))
    times["sort_s"] = time.perf_counter() - started
    header.click()
    payouts = [_fen(r["payout"]) for r in _table(driver, "hospital-table")]
    assert payouts == sorted(payouts, reverse=True)
    started = time.perf_counter()
    Select(driver.find_element(By.ID, "filter-type")).select_by_value("中医")
    _wait(driver, lambda d: {r["type"] for r in _table(d, "hospital-table")} == {"中医"})
    times["filter_s"] = time.perf_counter() - started
    Select(driver.find_element(By.ID, "filter-type")).select_by_value("")
    pool = rows[0]["pool"]  # the pool filter
    Select(driver.find_element(By.ID, "filter-pool")).select_by_value(pool)
    in_pool = _table(driver, "hospital-table")
    assert in_pool and {r["pool"] for r in in_pool} == {pool} and len(in_pool) < len(rows)
    Select(driver.find_element(By.ID, "filter-pool")).select_by_value("")
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
    started = time.perf_counter()
    driver.find_element(By.CSS_SELECTOR, f'#hospital-table tr[data-hospital="{other}"] a').click()
    _wait(driver, ec.presence_of_element_located((By.CSS_SELECTOR, "#chain table.chain-money")))
    times["open_hospital_s"] = time.perf_counter() - started
    groups = _table(driver, "groups-table")
    expected = api.get(f"/regions/{region}/hospitals/{other}").json()
    assert [g["group"] for g in groups] == [g["group"] for g in expected["groups"]]
    balances = [_fen(g["balance"]) for g in groups]
    assert balances == sorted(balances) and balances == [_fen(g["balance"]) for g in expected["groups"]]
    assert driver.find_element(By.ID, "hospital-name").text.startswith(HTML_NAME)
    _shot(driver, shots, "4-hospital-bureau")
    # its payment chain: the settlement's money as the baseline's hospitals.csv has it, read here on its own
    with open(served["folder"] / "baseline" / "hospitals.csv", encoding="utf-8-sig") as f:
        settled = {r["pool"]: r for r in csv.DictReader(f) if r["hospital_id"] == other}
    chains = driver.find_elements(By.CSS_SELECTOR, "#chain table.chain-money")
    assert {c.get_attribute("data-pool") for c in chains} == set(settled)
    for chain in chains:
        row = settled[chain.get_attribute("data-pool")]
        for item in ("fund_payout", "payment", "patient_paid", "clearing"):
            cell = chain.find_element(By.CSS_SELECTOR, f'tr[data-item="{item}"] td[data-col="amount"]')
            assert _fen(cell.text) == _fen(row[item]), item
    total = driver.find_element(By.CSS_SELECTOR, '#chain-total tr[data-item="fund_payout"] td[data-col="amount"]')
    assert _fen(total.text) == sum(_fen(r["fund_payout"]) for r in settled.values())
    points = driver.find_elements(By.CSS_SELECTOR, "#chain table.chain-points")
    for table_ in points:
        final = table_.find_elements(By.CSS_SELECTOR, 'tbody tr td[data-col="points"]')[-1].text
        assert Decimal(final.replace(",", "")) == round(Decimal(settled[table_.get_attribute("data-pool")]
                                                                ["points"]), 4)
    driver.execute_script("document.getElementById('chain').scrollIntoView()")
    _shot(driver, shots, "4b-hospital-chain")

    # several runs side by side: a second run, both ticked, compared
    second = api.post(f"/regions/{region}/runs", json={"name": "中医加成 30%", "set": {TCM: 0.3}}).json()["id"]
    served["server"].runs.wait()
    _open(driver, served, f"#/compare/{region}", "#multi-runs")
    for run in (run_id, second):
        driver.find_element(By.CSS_SELECTOR, f'#multi-runs input[data-run="{run}"]').click()
    driver.find_element(By.ID, "multi-button").click()
    _wait(driver, ec.presence_of_element_located((By.CSS_SELECTOR, "#multi-table tbody tr")))
    compared = api.get(f"/regions/{region}/compare?runs={run_id},{second}").json()
    shown = {(r["hospital_id"], r["pool"]): r for r in _table(driver, "multi-table")}
    assert len(shown) == len(compared["hospitals"]) == len(rows)
    for h in compared["hospitals"]:
        r = shown[(h["hospital_id"], h["pool"])]
        assert [_fen(r[f"payout_{i}"]) for i in range(2)] == [_fen(x["payout"]) for x in h["runs"]]
        assert _fen(r["payout_0"]) == cli[(h["hospital_id"], h["pool"])]
    # sorted by the second run's change, largest first (two clicks), then filtered to the TCM hospitals
    header = driver.find_element(By.CSS_SELECTOR, '#multi-table th[data-col="change_1"]')
    header.click()
    header.click()
    _wait(driver, lambda d: "sorted-desc" in header.get_attribute("class"))
    changes = [_fen(r["change_1"]) for r in _table(driver, "multi-table")]
    assert changes == sorted(changes, reverse=True) and len(changes) == len(rows)
    tcm = {h["hospital_id"] for h in compared["hospitals"] if h["type"] == "中医"}
    assert tcm and len(tcm) < len({h["hospital_id"] for h in compared["hospitals"]})
    Select(driver.find_elements(By.CSS_SELECTOR, ".filters select")[-2]).select_by_value("中医")  # type
    _wait(driver, lambda d: {r["hospital_id"] for r in _table(d, "multi-table")} == tcm)
    _wait(driver, lambda d: d.execute_script(
        "return !!echarts.getInstanceByDom(document.getElementById('multi-chart'))"))
    _shot(driver, shots, "3c-compare-multi")

    # English
    driver.find_element(By.ID, "lang-switch").click()
    _wait(driver, lambda d: "Compare scenarios" in d.find_element(By.ID, "page-title").text)
    _open(driver, served, f"#/hospital/{region}/{other}", "#chain table.chain-money")
    _open(driver, served, f"#/compare/{region}/{run_id}", "#hospital-table tbody tr")
    assert driver.find_element(By.CSS_SELECTOR, '#hospital-table th[data-col="payout"]').text == \
        "variant payout (yuan)"
    time.sleep(0.5)  # a page still loading from the visit before must not draw onto this one
    assert not driver.find_elements(By.ID, "groups-table") and len(driver.find_elements(By.ID, "page-title")) == 1
    _shot(driver, shots, "5-compare-english")
    driver.find_element(By.ID, "lang-switch").click()
    assert _severe_logs(driver) == []
    path = _times_path(shots)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"cases": loaded.cases.num_rows, "hospitals": len(loaded.hospital_ids),
                                **{k: round(v, 3) for k, v in times.items()}}, indent=2), encoding="utf-8")
    assert set(times) == {"login_s", "overview_s", "run_variant_s", "sort_s", "filter_s", "open_hospital_s"}


def test_a_hospital_account_sees_only_its_own_hospital(served, browser, shots):
    region, driver, own = served["region"], browser, served["hospital"]
    bureau = _api(served, "bureau")
    run = bureau.post(f"/regions/{region}/runs", json={"name": "中医加成 20%", "set": {TCM: 0.2}}).json()["id"]
    served["server"].runs.wait()
    _login(driver, served, "hospital", shots)
    assert own in driver.find_element(By.ID, "who").text
    assert not driver.find_elements(By.ID, "funds-table")  # the fund monitoring is the bureau's
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
    for bureau_only in ("summary-table", "run-by-level", "run-by-type", "run-pools"):
        assert not driver.find_elements(By.ID, bureau_only)  # aggregates over hospitals: the bureau's
    assert driver.find_elements(By.CSS_SELECTOR, '[data-download="hospitals.xlsx"]')  # its own rows, downloadable
    _shot(driver, shots, "7-compare-hospital")
    # several runs side by side: its own rows only
    second = bureau.post(f"/regions/{region}/runs", json={"name": "中医加成 5%", "set": {TCM: 0.05}}).json()["id"]
    served["server"].runs.wait()
    _open(driver, served, f"#/compare/{region}/{run},{second}", "#multi-table tbody tr")
    multi = _table(driver, "multi-table")
    assert multi and {r["hospital_id"] for r in multi} == {own}
    text = driver.find_element(By.TAG_NAME, "body").text
    assert not any(h in text for h in others) and not any(n in text for n in names)
    _shot(driver, shots, "7b-compare-multi-hospital")

    _open(driver, served, f"#/hospital/{region}/", "#chain table.chain-money")
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
