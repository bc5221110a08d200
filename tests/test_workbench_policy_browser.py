"""The 政策参数 page in a real browser (Debian's Chromium driven by Selenium, as tests/test_workbench_browser.py): the
bureau opens it, sees every parameter by section with its label, unit, meaning and baseline value, raises the TCM
bonus (a value out of bounds refused on the page first), saves the variants as a scenario file (the download and the
text the page shows are the file the API made), loads the file back into a fresh page and sees the values filled,
runs them and follows a link to 情景对比; a hospital account reads the values only. Screenshots under
$DIPSIM_SCREENSHOTS (else the test's tmp folder). Skipped, with the reason, without selenium, chromium or
chromedriver."""

from __future__ import annotations

import tomllib

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("argon2")
pytest.importorskip("httpx")
pytest.importorskip("uvicorn")
pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[test]')")

import test_workbench_browser as workbench  # skipped there, and so here, without chromium
import tomli_w
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select

# the driver (downloads into `downloads_dir`), the screenshots' folder and helpers as the workbench's browser test
# sets them up
browser, downloads_dir, shots = workbench.browser, workbench.downloads_dir, workbench.shots
_shot, _wait = workbench._shot, workbench._wait
served = workbench.served  # the small demo region behind uvicorn, the demo accounts

TCM = "coefficient.tcm_hospital_bonus"
HIGH = "outlier.high_ratio"
HTML_NAME = '<b id="injected">方案</b><script>window.injected = 1</script>'


def _login(driver, served, name: str) -> None:
    driver.get(f"{served['base']}/")
    _wait(driver, ec.presence_of_element_located((By.ID, "login-user"))).send_keys(name)
    driver.find_element(By.ID, "login-password").send_keys(served["passwords"][name])
    driver.find_element(By.ID, "login-submit").click()
    _wait(driver, ec.presence_of_element_located((By.ID, "card-cases")))


def _open_policy(driver, served, ready: str) -> None:
    driver.find_element(By.CSS_SELECTOR, '#nav a[data-page="policy"]').click()
    _wait(driver, ec.presence_of_element_located((By.CSS_SELECTOR, ready)))


def _field(driver, variant: int, path: str):
    return driver.find_element(By.CSS_SELECTOR, f'[data-variant="{variant}"][data-path="{path}"]')


def _type(field, text: str) -> None:
    field.clear()
    field.send_keys(text)


def _severe_logs(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_bureau_saves_variants_as_a_scenario_file_and_loads_it_back(served, browser, shots, tmp_path,
                                                                     downloads_dir):
    driver, region = browser, served["region"]
    _login(driver, served, "bureau")
    _open_policy(driver, served, f'[data-variant="0"][data-path="{TCM}"]')
    assert driver.current_url.endswith(f"#/policy/{region}")
    # every parameter of the registry, by section, in Chinese: label, path, unit, meaning, source; default, baseline
    api = served["server"]
    rows = driver.find_elements(By.CSS_SELECTOR, "tr[data-param]")
    from dipsim.policy import PARAMETERS

    sections = list(dict.fromkeys(path.split(".")[0] for path in PARAMETERS))  # in the registry's order
    assert [r.get_attribute("data-param") for r in rows] == [path for s in sections for path in PARAMETERS
                                                             if path.split(".")[0] == s]
    assert "医疗机构系数" in driver.find_element(By.ID, "section-coefficient").text
    row = driver.find_element(By.CSS_SELECTOR, f'tr[data-param="{TCM}"]')
    assert "中医医院加成" in row.text and TCM in row.text and "加成比例" in row.text and "中医加成" in row.text
    budget = driver.find_element(By.CSS_SELECTOR, 'tr[data-param="budget.total"] td.baseline')
    pools = api.region(region).policy.get("budget.total")
    assert budget.find_elements(By.CSS_SELECTOR, "table.mini tbody tr") and all(p in budget.text for p in pools)
    assert f"{pools[next(iter(pools))]:,.2f}" in budget.text  # yuan with thousands separators
    schedule = driver.find_element(By.CSS_SELECTOR, 'tr[data-param="cycle.quality_schedule"] td.baseline')
    assert "起始分" in schedule.text  # a schedule as a small table
    _shot(driver, shots, "p1-policy-form")

    # a value out of bounds: said at the field, and the file is not saved
    tcm = _field(driver, 0, TCM)
    _type(tcm, "-1")
    problem = driver.find_element(By.CSS_SELECTOR, f'[data-problem="0-{TCM}"]')
    assert problem.text == "应 不小于 0"
    driver.find_element(By.ID, "save-scenario").click()
    assert "中医医院加成" in driver.find_element(By.ID, "policy-status").text
    assert driver.find_element(By.ID, "scenario-text").get_attribute("textContent") == ""
    # two variants: the TCM bonus raised; the outlier ratio lowered and same-price off
    _type(tcm, "0.12")
    assert problem.text == ""
    _type(driver.find_element(By.ID, "variant-name-0"), "中医加成 12%")
    driver.find_element(By.ID, "add-variant").click()
    _type(_field(driver, 1, HIGH), "1.6")
    Select(_field(driver, 1, "tcm.same_price")).select_by_value("false")
    _type(driver.find_element(By.ID, "variant-name-1"), "超高界值 1.6")
    _type(driver.find_element(By.ID, "scenario-title"), "中医加成与偏差病例")
    driver.find_element(By.ID, "save-scenario").click()
    _wait(driver, lambda d: d.find_element(By.ID, "scenario-text").get_attribute("textContent"))
    text = driver.find_element(By.ID, "scenario-text").get_attribute("textContent")
    saved = tomllib.loads(text)
    assert saved["scenario"] == {"name": "workbench", "title": "中医加成与偏差病例", "baseline": "policy.toml"}
    assert saved["variant"] == [{"name": "中医加成 12%", "set": {TCM: 0.12}},
                                {"name": "超高界值 1.6", "set": {HIGH: 1.6, "tcm.same_price": False}}]
    download = downloads_dir / f"scenario_{region}.toml"
    _wait(driver, lambda d: download.is_file() and download.read_text(encoding="utf-8") == text, 15)
    driver.find_element(By.ID, "download-policy").click()
    policy = downloads_dir / "policy.toml"
    _wait(driver, lambda d: policy.is_file() and policy.stat().st_size > 0, 15)
    assert policy.read_bytes() == (api.region(region).folder / "policy.toml").read_bytes()
    _shot(driver, shots, "p2-policy-saved")

    # a fresh page: the file picked and loaded back fills the variants
    driver.refresh()
    _wait(driver, ec.presence_of_element_located((By.CSS_SELECTOR, f'[data-variant="0"][data-path="{TCM}"]')))
    assert _field(driver, 0, TCM).get_attribute("value") == ""
    driver.find_element(By.ID, "load-scenario").send_keys(str(download))
    _wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, f'[data-path="{HIGH}"][data-variant]')) == 2)
    assert _field(driver, 0, TCM).get_attribute("value") == "0.12"
    assert _field(driver, 1, HIGH).get_attribute("value") == "1.6"
    assert Select(_field(driver, 1, "tcm.same_price")).first_selected_option.get_attribute("value") == "false"
    assert _field(driver, 1, TCM).get_attribute("value") == ""  # not set: the baseline's
    assert driver.find_element(By.ID, "variant-name-0").get_attribute("value") == "中医加成 12%"
    assert driver.find_element(By.ID, "variant-name-1").get_attribute("value") == "超高界值 1.6"
    assert driver.find_element(By.ID, "scenario-title").get_attribute("value") == "中医加成与偏差病例"
    status = driver.find_element(By.ID, "policy-status").text
    assert f"scenario_{region}.toml" in status and 'baseline = "policy.toml" 未读取' in status
    _shot(driver, shots, "p3-policy-loaded")

    # run both: each links to its 情景对比 page
    driver.find_element(By.ID, "run-variants").click()
    _wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#run-links li a")) == 2, 60)
    links = driver.find_elements(By.CSS_SELECTOR, "#run-links li a")
    runs = [li.get_attribute("data-run") for li in driver.find_elements(By.CSS_SELECTOR, "#run-links li")]
    assert [a.get_attribute("href").split("#")[1] for a in links] == [f"/compare/{region}/{r}" for r in runs]
    records = [api.data.runs.get(r) for r in runs]
    assert [(r["name"], r["set"]) for r in records] == [(v["name"], v["set"]) for v in saved["variant"]]
    _shot(driver, shots, "p4-policy-runs")
    links[0].click()
    _wait(driver, ec.presence_of_element_located((By.CSS_SELECTOR, "#hospital-table tbody tr")))
    assert driver.find_element(By.ID, "run-title").get_attribute("data-run") == runs[0]

    # a file whose names are HTML: shown as text, nothing made of it; a bad file: the server's message
    hostile = tmp_path / "hostile.toml"
    hostile.write_text(tomli_w.dumps({"scenario": {"title": HTML_NAME}, "variant": [
        {"name": HTML_NAME, "set": {TCM: 0.05, "coefficient.hospital": {"H0001": 1.1},
                                    "budget.scale": {"2025-01-01": 1.0, "2025-07-01": 1.05}}}]}), encoding="utf-8")
    _open_policy(driver, served, "#load-scenario")
    driver.find_element(By.ID, "load-scenario").send_keys(str(hostile))
    _wait(driver, lambda d: d.find_element(By.ID, "variant-name-0").get_attribute("value") == HTML_NAME)
    assert len(driver.find_elements(By.CSS_SELECTOR, "[data-path][data-variant]")) > 0
    fixed = driver.find_element(By.CSS_SELECTOR, 'tr[data-param="coefficient.hospital"] td.variant-cell')
    assert "H0001" in fixed.text  # a table from the file: shown, kept
    dated = driver.find_element(By.CSS_SELECTOR, 'tr[data-param="budget.scale"] td.variant-cell')
    assert [tr.text for tr in dated.find_elements(By.CSS_SELECTOR, "table.mini tr")] == [
        "日期 值", "2025-01-01 1", "2025-07-01 1.05"]  # a dated value: date -> value
    driver.find_element(By.ID, "save-scenario").click()  # saved again: the values the form does not edit are kept
    _wait(driver, lambda d: d.find_element(By.ID, "scenario-text").get_attribute("textContent").startswith(
        "# dipsim scenario file"))  # the server's file (the page showed the one loaded until now)
    again = tomllib.loads(driver.find_element(By.ID, "scenario-text").get_attribute("textContent"))
    assert again["scenario"]["title"] == HTML_NAME and again["variant"] == [
        {"name": HTML_NAME, "set": {TCM: 0.05, "coefficient.hospital": {"H0001": 1.1},
                                    "budget.scale": {"2025-01-01": 1.0, "2025-07-01": 1.05}}}]
    assert not driver.find_elements(By.ID, "injected") and driver.execute_script("return window.injected") is None
    bad = tmp_path / "bad.toml"
    bad.write_text('[[variant]]\nname = "a"\nset = { "outlier.hgh_ratio" = 2.0 }\n', encoding="utf-8")
    driver.find_element(By.ID, "load-scenario").send_keys(str(bad))
    _wait(driver, lambda d: "did you mean outlier.high_ratio" in d.find_element(By.ID, "policy-status").text)
    assert driver.find_element(By.ID, "variant-name-0").get_attribute("value") == HTML_NAME  # the form kept

    # English: the same page in the user's language
    driver.find_element(By.ID, "lang-switch").click()
    _wait(driver, lambda d: "Policy parameters" in d.find_element(By.ID, "page-title").text)
    row = driver.find_element(By.CSS_SELECTOR, f'tr[data-param="{TCM}"]')
    assert "TCM hospital bonus" in row.text and "share added" in row.text
    _shot(driver, shots, "p5-policy-english")
    driver.find_element(By.ID, "lang-switch").click()
    assert [m for m in _severe_logs(driver) if "422" not in m] == []  # the bad file's 422, asked for


def test_a_hospital_account_reads_the_parameters_only(served, browser, shots):
    driver = browser
    _login(driver, served, "hospital")
    _open_policy(driver, served, f'tr[data-param="{TCM}"]')
    assert driver.find_element(By.ID, "policy-read-only").text
    for absent in ("save-scenario", "load-scenario", "run-variants", "download-policy", "add-variant"):
        assert not driver.find_elements(By.ID, absent), absent
    assert not driver.find_elements(By.CSS_SELECTOR, "[data-variant]")
    assert driver.find_element(By.CSS_SELECTOR, f'tr[data-param="{HIGH}"] td.baseline').text == "2.0" or \
        driver.find_element(By.CSS_SELECTOR, f'tr[data-param="{HIGH}"] td.baseline').text == "2"
    _shot(driver, shots, "p6-policy-hospital")
    assert _severe_logs(driver) == []
