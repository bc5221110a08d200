"""The 数据上传 page in a real browser (Debian's Chromium driven by Selenium, the driver set up as in
test_workbench_browser.py) against `dipsim serve` (uvicorn in a thread): the bureau uploads a small GB18030 CSV of
claims (some rows bad: a formula, HTML in a case id, text in a number column) and a hospitals table, sees the
upload and the processing finish, the counts (read = accepted + rejected), the rejects table with the HTML as text,
and opens the new region's 区域概览. A hospital account has no 数据上传. Screenshots under $DIPSIM_SCREENSHOTS."""

from __future__ import annotations

import csv
import io

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("argon2")
pytest.importorskip("uvicorn")
pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[test]')")

import test_workbench_browser as workbench
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec

from dipsim.server import create_app

# the driver, its options and the screenshots' folder as the workbench's browser test sets them up (skipped there,
# and so here, without chromium and chromedriver)
driver, downloads_dir = workbench.browser, workbench.downloads_dir
screenshots = workbench.shots
serve_in_thread, _shot, _wait = workbench.serve_in_thread, workbench._shot, workbench._wait

SCRIPT_ID = '<script>window.injected = 1</script>'
IMG_NAME = '<img id="injected" src="x" onerror="window.injected = 2">'


@pytest.fixture(scope="module")
def upload_server(tmp_path_factory):
    """An empty data folder behind uvicorn, a bureau and a hospital account, and the files to upload."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from dipsim.io.writers import write_csv
    from dipsim.synth import synthesize_region

    root = tmp_path_factory.mktemp("upload-browser")
    synthesize_region(root / "region", cases=400, hospitals=8, seed=11, year=2025)
    parts = sorted((root / "region" / "cases").rglob("*.parquet"))
    write_csv(pa.concat_tables([pq.read_table(p) for p in parts], promote_options="permissive"),
              root / "all.csv", bom=False)
    rows = list(csv.reader(io.StringIO((root / "all.csv").read_text(encoding="utf-8"))))
    header = rows[0]
    for row in rows[1:]:
        row[header.index("department")] = "心血管内科"  # GB18030 bytes, not UTF-8
    rows[1][header.index("total_cost")] = '=HYPERLINK("http://evil.example","x")'
    rows[2][header.index("case_id")] = SCRIPT_ID
    rows[2][header.index("los_days")] = "三天"
    rows[3][header.index("age_years")] = "<b>abc</b>"
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    (root / "病例.csv").write_bytes(text.getvalue().encode("gb18030"))
    hospitals = list(csv.reader(io.StringIO((root / "region" / "hospitals.csv").read_text(encoding="utf-8-sig"))))
    hospitals[1][hospitals[0].index("name")] = IMG_NAME
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(hospitals)
    (root / "医院.csv").write_bytes(out.getvalue().encode("gb18030"))

    app = create_app(root / "data")
    server = app.state.server
    server.accounts.add("ana", "ana-password", "bureau")
    server.accounts.add("bo", "bo-password", "hospital", "H0001")
    with serve_in_thread(app) as base:
        yield {"base": base, "server": server, "claims": root / "病例.csv",
               "hospitals": root / "医院.csv", "rows": len(rows) - 1}


def _login(driver, served, name: str) -> None:
    driver.get(f"{served['base']}/app/#/login")
    _wait(driver, ec.presence_of_element_located((By.ID, "login-user"))).send_keys(name)
    driver.find_element(By.ID, "login-password").send_keys(f"{name}-password")
    driver.find_element(By.ID, "login-submit").click()
    _wait(driver, ec.presence_of_element_located((By.CSS_SELECTOR, "#nav a")))


def _number(text: str) -> int:
    return int(text.replace(",", ""))


def test_the_bureau_uploads_a_gb18030_csv_and_sees_counts_rejects_and_the_new_region(driver, upload_server,
                                                                                      screenshots):
    served, shots = upload_server, screenshots
    _login(driver, served, "ana")
    _wait(driver, ec.element_to_be_clickable((By.CSS_SELECTOR, '#nav a[data-page="upload"]'))).click()
    _wait(driver, ec.presence_of_element_located((By.ID, "upload-form")))
    assert driver.find_element(By.CSS_SELECTOR, '#nav a[data-page="upload"]').text == "数据上传"
    driver.find_element(By.ID, "upload-title").send_keys("上传测试区域")
    driver.find_element(By.ID, "upload-claims").send_keys(str(served["claims"]))
    driver.find_element(By.ID, "upload-hospitals").send_keys(str(served["hospitals"]))
    _shot(driver, shots, "upload-0-form")
    driver.find_element(By.ID, "upload-submit").click()
    _wait(driver, ec.presence_of_element_located((By.CSS_SELECTOR, '#upload-status[data-status]')), timeout=120)
    status = driver.find_element(By.ID, "upload-status")
    assert status.get_attribute("data-status") == "done", (status.text, driver.find_element(By.ID, "main").text)
    assert driver.find_element(By.ID, "upload-progress").get_attribute("value") == "100"
    _wait(driver, ec.presence_of_element_located((By.ID, "upload-rejects")))
    read = _number(driver.find_element(By.CSS_SELECTOR, "#upload-read .v").text)
    accepted = _number(driver.find_element(By.CSS_SELECTOR, "#upload-accepted .v").text)
    rejected = _number(driver.find_element(By.CSS_SELECTOR, "#upload-rejected .v").text)
    assert read == served["rows"] and read == accepted + rejected and rejected == 3
    cells = driver.execute_script(
        "return [...document.querySelectorAll('#upload-rejects tbody tr')].map(tr => "
        "Object.fromEntries([...tr.children].map(td => [td.dataset.col, td.textContent])))")
    assert {c["row"] for c in cells} == {"1", "2", "3"} and {c["file"] for c in cells} == {"病例.csv"}
    assert SCRIPT_ID in {c["case_id"] for c in cells}  # the HTML shown as its characters
    assert '=HYPERLINK("http://evil.example","x")' in {c["value"] for c in cells}
    assert "<b>abc</b>" in {c["value"] for c in cells}
    assert driver.execute_script("return window.injected") is None
    assert not driver.find_elements(By.ID, "injected") and not driver.find_elements(By.CSS_SELECTOR, "#main b")
    warnings = driver.find_element(By.ID, "upload-warnings").text
    assert "60%" in warnings
    assert driver.find_element(By.ID, "upload-rejects-csv").text and driver.find_element(By.ID, "upload-rejects-xlsx")
    _shot(driver, shots, "upload-1-done")
    # the new region: listed by the API, and its 区域概览 opens from the link
    driver.find_element(By.ID, "upload-region-link").click()
    _wait(driver, ec.presence_of_element_located((By.ID, "card-cases")))
    assert _number(driver.find_element(By.CSS_SELECTOR, "#card-cases .v").text) == accepted
    assert "上传测试区域" in driver.find_element(By.ID, "page-title").text
    _shot(driver, shots, "upload-2-region")


def test_a_hospital_account_has_no_upload_page(driver, upload_server, screenshots):
    served, shots = upload_server, screenshots
    _login(driver, served, "bo")
    assert not driver.find_elements(By.CSS_SELECTOR, '#nav a[data-page="upload"]')
    driver.execute_script("location.hash = '#/upload'")
    _wait(driver, ec.presence_of_element_located((By.CSS_SELECTOR, "#main .error")))
    _shot(driver, shots, "upload-3-hospital")
