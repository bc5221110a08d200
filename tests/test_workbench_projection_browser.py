"""The 多年预测 page in a real browser (Debian's Chromium driven by Selenium, set up as in test_workbench_browser.py)
against `dipsim serve` (uvicorn in a thread) on the small demo region: the bureau runs the shipped example for 2
years with 3 draws, sees the progress end, the three charts (point value with its band, fund balance, payouts by
level), the years table equal to `dipsim.project.project` to the fen, the hospitals table with its filters, a
hospital name that is HTML shown as text, and downloads the years table; a refused file shows its problems; a
hospital account sees the point values and its own payout path only. Screenshots under $DIPSIM_SCREENSHOTS."""

from __future__ import annotations

import csv
import tomllib

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("argon2")
pytest.importorskip("uvicorn")
pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[test]')")

import test_workbench_browser as workbench
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select

from dipsim.paths import scenarios_dir
from dipsim.project import projection_of
from dipsim.projection.levers import lever_scenarios, project_levers

# the server, driver, screenshots and helpers of the workbench's browser test (skipped there, and so here, without
# chromium and chromedriver)
served, browser, downloads_dir, shots = workbench.served, workbench.browser, workbench.downloads_dir, workbench.shots
_login, _shot, _wait, _table = workbench._login, workbench._shot, workbench._wait, workbench._table
_fen = workbench._fen
_downloaded, _severe_logs, HTML_NAME = workbench._downloaded, workbench._severe_logs, workbench.HTML_NAME

CHARTS = ("pv-chart", "balance-chart", "payout-chart")


def _chart_ready(driver, chart_id: str) -> None:
    _wait(driver, lambda d: d.execute_script(
        "const c = echarts.getInstanceByDom(document.getElementById(arguments[0]));"
        "return !!c && c.getOption().series.length > 0", chart_id))


def _series(driver, chart_id: str) -> list[dict]:
    return driver.execute_script(
        "return echarts.getInstanceByDom(document.getElementById(arguments[0])).getOption().series"
        ".map(s => ({name: s.name, data: s.data, stack: s.stack || null}))", chart_id)


def test_bureau_runs_the_example_and_reads_the_paths_tables_and_downloads(served, browser, shots, downloads_dir):
    region, driver = served["region"], browser
    loaded = served["server"].region(region)
    other = sorted(h for h in loaded.hospital_ids if h != served["hospital"])[0]
    loaded.names[other] = HTML_NAME  # shown as text wherever it appears, never run
    _login(driver, served, "bureau", shots)
    driver.execute_script("location.hash = arguments[0]", f"#/projection/{region}")
    _wait(driver, ec.presence_of_element_located((By.ID, "projection-run")))
    assert driver.find_element(By.CSS_SELECTOR, '#nav a[data-page="projection"]').text == "多年预测"
    # the shipped example's text is shown for reading; a pasted file with a policy path is refused with its problems
    _wait(driver, lambda d: "projection_example" in d.find_element(By.ID, "projection-text").get_attribute("value"))
    text = driver.find_element(By.ID, "projection-text")
    text.send_keys(Keys.CONTROL, "a")
    text.send_keys('[projection]\nyears = 2\npolicy = "/etc/passwd"\n')
    assert driver.find_element(By.ID, "projection-own").is_selected()
    driver.find_element(By.ID, "projection-run").click()
    _wait(driver, lambda d: "/etc/passwd" in d.find_element(By.ID, "projection-problems").text)
    _shot(driver, shots, "p1-projection-refused")
    # the example, 2 years, 3 draws
    driver.find_element(By.ID, "projection-example").click()
    for field, value in (("projection-years", "2"), ("projection-draws", "3")):
        box = driver.find_element(By.ID, field)
        box.clear()
        box.send_keys(value)
    driver.find_element(By.ID, "projection-run").click()
    _wait(driver, ec.presence_of_element_located((By.CSS_SELECTOR, "#projection-years-table tbody tr")), 120)
    for chart in CHARTS:
        _chart_ready(driver, chart)
    _shot(driver, shots, "p2-projection-bureau")
    projection = driver.find_element(By.ID, "projection-title").get_attribute("data-projection")
    assert driver.current_url.endswith(f"#/projection/{region}/{projection}")
    # the point value chart: per scenario of the example (its own, then its levers) and pool a line and its band
    # (base p10 + width stacked), 3 years each
    data = tomllib.loads((scenarios_dir() / "projection_example.toml").read_text(encoding="utf-8"))
    data["projection"]["years"] = 2
    scenarios = lever_scenarios(projection_of(data), loaded.policy)
    pools = loaded.region.case_set.pools

    def pv_lines() -> list[str]:
        return sorted(s["name"] for s in _series(driver, "pv-chart") if not s["stack"])

    # five scenarios x two pools would crowd a chart: the baseline and the first lever at first, the picker
    # (each scenario's box, with its title, in the file's order) adds or drops the others and the pools
    picker = driver.find_elements(By.CSS_SELECTOR, "#projection-scenario-picker input")
    assert [b.get_attribute("data-name") for b in picker] == [s.name for s in scenarios]
    assert [b.is_selected() for b in picker] == [True, True, False, False, False]
    assert scenarios[1].title in driver.find_element(By.ID, "projection-scenario-picker").text
    assert pv_lines() == sorted(f"{s.name} · {pool}" for s in scenarios[:2] for pool in pools)
    assert {r["scenario"] for r in _table(driver, "projection-by-level-table")} == {"baseline", "reserve"}
    driver.find_elements(By.CSS_SELECTOR, "#projection-pool-picker input")[0].click()  # the first pool dropped
    assert pv_lines() == sorted(f"{s.name} · {pools[1]}" for s in scenarios[:2])
    driver.find_elements(By.CSS_SELECTOR, "#projection-pool-picker input")[0].click()
    picker[1].click()  # the first lever unticked: its lines and by-level rows go, the baseline's stay
    assert pv_lines() == sorted(f"baseline · {pool}" for pool in pools)
    assert {r["scenario"] for r in _table(driver, "projection-by-level-table")} == {"baseline"}
    picker[1].click()
    for box in picker[2:]:
        box.click()
    series = _series(driver, "pv-chart")
    lines = [s for s in series if not s["stack"]]
    assert sorted(s["name"] for s in lines) == sorted(f"{scenario.name} · {pool}" for scenario in scenarios
                                                      for pool in loaded.region.case_set.pools)
    assert len([s for s in series if s["stack"]]) == 2 * len(lines) and all(len(s["data"]) == 3 for s in series)
    # the years table equals the Python API's projection of the same file, inputs and policy, to the fen
    expected = project_levers(loaded.cases, loaded.hospitals, loaded.policy, scenarios, loaded.grouped(None))
    rows = _table(driver, "projection-years-table")
    assert [_fen(r["fund_payout"]) for r in rows] == [round(v * 100) for v in expected.years["fund_payout"]]
    assert [_fen(r["balance"]) for r in rows] == [round(v * 100) for v in expected.years["balance"]]
    assert [float(r["point_value"].replace(",", "")) for r in rows] == \
        [round(v, 4) for v in expected.years["point_value"]]
    balance = _series(driver, "balance-chart")
    baseline = expected.years[expected.years["scenario"] == "baseline"]
    assert next(s["data"] for s in balance if not s["stack"]) == [float(v) for v in baseline["balance"][::2]]
    levels = [s["name"] for s in _series(driver, "payout-chart")]
    assert levels[0] == "baseline · 三级甲等" and len(levels) >= 2 * len(scenarios)
    assert [r["scenario"] for r in _table(driver, "projection-by-level-table")][::len(levels) // len(scenarios)] \
        == [s.name for s in scenarios for _ in range(3)]  # the file's order, years 0-2 each
    # the hospitals table: every hospital each year, filtered by year; the HTML name as text
    hospitals = _table(driver, "hospital-table")
    assert len(hospitals) == len(scenarios) * 3 * 12 and any(r["name"] == HTML_NAME for r in hospitals)
    assert not driver.find_elements(By.ID, "injected") and driver.execute_script("return window.injected") is None
    Select(driver.find_element(By.ID, "filter-year")).select_by_value("2")
    filtered = _table(driver, "hospital-table")
    assert {r["year"] for r in filtered} == {"2"} and len(filtered) == len(scenarios) * 12
    # the years table downloaded in the browser: Chinese headers, the same fen
    driver.find_element(By.CSS_SELECTOR, '[data-download="projection-years.csv"]').click()
    with open(_downloaded(downloads_dir, ".csv"), encoding="utf-8-sig") as f:
        table = list(csv.DictReader(f))
    assert [_fen(r["基金支付（元）"]) for r in table] == [round(v * 100) for v in expected.years["fund_payout"]]
    assert not _severe_logs(driver) or all("422" in m for m in _severe_logs(driver))  # the refused file's answer


def test_a_hospital_account_sees_the_point_values_and_its_own_payout_path(served, browser, shots):
    region, driver, own = served["region"], browser, served["hospital"]
    server = served["server"]
    done = [k for k, r in server.projections.index.items() if r["status"] == "done"]
    if not done:  # this test alone: a projection of the bureau's to read
        from dipsim.server.accounts import User

        loaded = server.region(region)
        text = (scenarios_dir() / "projection_example.toml").read_text(encoding="utf-8")
        server.projections.submit(region, loaded, text, 2, 2, None, User("bureau", "bureau", None), True)
        server.projections.wait()
        done = [k for k, r in server.projections.index.items() if r["status"] == "done"]
    _login(driver, served, "hospital", shots)
    driver.execute_script("location.hash = arguments[0]", f"#/projection/{region}/{done[0]}")
    _wait(driver, ec.presence_of_element_located((By.CSS_SELECTOR, "#projection-years-table tbody tr")), 60)
    _chart_ready(driver, "pv-chart")
    _chart_ready(driver, "payout-chart")
    assert not driver.find_elements(By.ID, "projection-run") and not driver.find_elements(By.ID, "balance-chart")
    assert {r["hospital_id"] for r in _table(driver, "hospital-table")} == {own}
    heads = [th.get_attribute("data-col") for th in driver.find_elements(By.CSS_SELECTOR,
                                                                         "#projection-years-table th")]
    assert "fund_payout" not in heads and "balance" not in heads and "point_value" in heads
    assert not driver.find_elements(By.ID, "projection-by-level-table")
    scenarios = ["baseline", "reserve", "floor", "caps", "reweight"]  # the example's own projection and its levers
    assert [s["name"] for s in _series(driver, "payout-chart") if not s["stack"]] == \
        [f"{scenario} · {server.region(region).names[own]}" for scenario in scenarios[:2]]  # the picker's first two
    driver.find_elements(By.CSS_SELECTOR, "#projection-scenario-picker input")[2].click()
    assert [s["name"] for s in _series(driver, "payout-chart") if not s["stack"]] == \
        [f"{scenario} · {server.region(region).names[own]}" for scenario in scenarios[:3]]
    _shot(driver, shots, "p3-projection-hospital")
