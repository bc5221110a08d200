"""Page interaction times of the browser workbench (issue 19): Debian's Chromium, headless, driven by Selenium against
a `dipsim serve` subprocess on 127.0.0.1 over the demo region of `--cases` cases (100 hospitals; the data folder
benchmarks/_work/serve_N, shared with bench_server.py and built the first time).

    python benchmarks/bench_pages.py [--cases 200000] [--repeats 3] [--json FILE]

The steps (the same as tests/test_workbench_browser.py's, which writes its own times to page_times.json), each timed
from the user's action to what it shows, the median of `--repeats` rounds (each round a fresh browser):
- login: the click on 登录 to the overview's first card;
- overview: loading /app/ afresh (scripts, labels, the region, the fund monitoring) to its charts drawn;
- compare page: opening 情景对比 to the parameter form;
- run variant: the click on 运行 (the TCM bonus raised) to the hospital table shown (a run of the baseline and the
  variant through the payment chain, server-side, then the page's tables and chart);
- sort: a click on a column header to the table re-sorted;
- filter: choosing a hospital type to the table filtered;
- open hospital: a click on a hospital's id to its 病组盈亏 and payment chain shown;
- download xlsx: a click on the hospital table's Excel link to the file saved.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
TCM = "coefficient.tcm_hospital_bonus"
STEPS = ("login_s", "overview_s", "compare_page_s", "run_variant_s", "sort_s", "filter_s", "open_hospital_s",
         "download_xlsx_s")


def browser(downloads: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser") or "chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1400,1100", "--lang=zh-CN", "--no-first-run", "--disable-extensions"):
        options.add_argument(argument)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads)})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=shutil.which("chromedriver")))
    driver.set_page_load_timeout(60)
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    return driver


def one_round(url: str, password: str, region: str, bonus: float, downloads: Path) -> dict[str, float]:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    driver = browser(downloads)
    times: dict[str, float] = {}

    def wait(condition, timeout: float = 120):
        return WebDriverWait(driver, timeout, poll_frequency=0.01).until(condition)

    def present(css: str):
        return wait(ec.presence_of_element_located((By.CSS_SELECTOR, css)))

    def chart(box: str):
        wait(lambda d: d.execute_script(f"return !!echarts.getInstanceByDom(document.getElementById('{box}'))"))

    try:
        driver.get(f"{url}/app/")
        present("#login-user").send_keys("bench")
        driver.find_element(By.ID, "login-password").send_keys(password)
        start = time.perf_counter()
        driver.find_element(By.ID, "login-submit").click()
        present("#card-cases")
        times["login_s"] = time.perf_counter() - start

        driver.get("about:blank")
        start = time.perf_counter()
        driver.get(f"{url}/app/#/region/{region}")
        present("#funds-table tbody tr")
        chart("level-chart")
        chart("funds-chart")
        times["overview_s"] = time.perf_counter() - start

        start = time.perf_counter()
        driver.execute_script("location.hash = arguments[0]", f"#/compare/{region}")
        field = present(f'[data-path="{TCM}"]')
        times["compare_page_s"] = time.perf_counter() - start
        field.clear()
        field.send_keys(str(bonus))
        start = time.perf_counter()
        driver.find_element(By.ID, "run-button").click()
        present("#hospital-table tbody tr")
        chart("change-chart")
        times["run_variant_s"] = time.perf_counter() - start

        header = driver.find_element(By.CSS_SELECTOR, '#hospital-table th[data-col="payout"]')
        start = time.perf_counter()
        header.click()
        wait(lambda d: "sorted-asc" in header.get_attribute("class"))
        times["sort_s"] = time.perf_counter() - start

        start = time.perf_counter()
        Select(driver.find_element(By.ID, "filter-type")).select_by_value("中医")
        wait(lambda d: d.execute_script("return [...document.querySelectorAll('#hospital-table tbody tr "
                                        "td[data-col=type]')].every(td => td.textContent === '中医')"))
        times["filter_s"] = time.perf_counter() - start

        start = time.perf_counter()
        driver.find_element(By.CSS_SELECTOR, "#hospital-table tbody tr a").click()
        present("#chain table.chain-money")
        times["open_hospital_s"] = time.perf_counter() - start

        driver.execute_script("history.back()")
        present("#hospital-table tbody tr")
        before = set(downloads.iterdir())
        start = time.perf_counter()
        driver.find_element(By.CSS_SELECTOR, '[data-download="hospitals.xlsx"]').click()
        deadline = time.monotonic() + 120
        while not [p for p in set(downloads.iterdir()) - before if p.suffix == ".xlsx"]:
            if time.monotonic() > deadline:
                raise RuntimeError("the Excel download did not arrive")
            time.sleep(0.01)
        times["download_xlsx_s"] = time.perf_counter() - start
        errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        if errors:
            raise RuntimeError(f"console errors: {errors}")
    finally:
        driver.quit()
    return times


def api_round(url: str, password: str, region: str, bonus: float) -> dict[str, float]:
    """The baseline: the same steps as the API calls the pages make, from Python (httpx), with no browser: what the
    pages add is the difference. Sort and filter make no call (the page does them), so they have no baseline."""
    import httpx

    times: dict[str, float] = {}
    with httpx.Client(base_url=f"{url}/api", timeout=300) as client:
        start = time.perf_counter()
        token = client.post("/login", json={"username": "bench", "password": password}).json()["token"]
        client.headers["Authorization"] = f"Bearer {token}"
        client.get("/me").raise_for_status()
        client.get("/regions").raise_for_status()
        times["login_s"] = time.perf_counter() - start
        start = time.perf_counter()
        for path in ("/labels", f"/regions/{region}", f"/regions/{region}/funds"):
            client.get(path).raise_for_status()
        times["overview_s"] = time.perf_counter() - start
        start = time.perf_counter()
        for path in (f"/regions/{region}/runs", f"/regions/{region}/parameters"):
            client.get(path).raise_for_status()
        times["compare_page_s"] = time.perf_counter() - start
        start = time.perf_counter()
        run = client.post(f"/regions/{region}/runs", json={"set": {TCM: bonus}}).json()
        while client.get(f"/runs/{run['id']}").json()["status"] in ("queued", "running"):
            time.sleep(0.01)
        rows = client.get(f"/runs/{run['id']}/hospitals").json()["hospitals"]
        times["run_variant_s"] = time.perf_counter() - start
        hospital = rows[0]["hospital_id"]  # a hospital of the region, as the page opens one of its table
        start = time.perf_counter()
        for path in (f"/regions/{region}/hospitals/{hospital}", f"/regions/{region}/hospitals/{hospital}/chain"):
            client.get(path).raise_for_status()
        times["open_hospital_s"] = time.perf_counter() - start
        start = time.perf_counter()
        client.get(f"/runs/{run['id']}/hospitals.xlsx").raise_for_status()
        times["download_xlsx_s"] = time.perf_counter() - start
    return times


def main() -> None:
    from bench_server import ServeProcess, bench_account, ensure_data

    from _machine import machine_line

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the times (every round and the medians) here")
    args = parser.parse_args()
    if not shutil.which("chromedriver"):
        sys.exit("chromium and chromedriver are needed (apt-get install chromium chromium-driver)")
    folder = HERE / "_work" / f"serve_{args.cases}"
    region = ensure_data(folder, args.cases)
    password = bench_account(folder)
    rounds: list[dict[str, float]] = []
    api_rounds: list[dict[str, float]] = []
    with ServeProcess(folder) as serve, tempfile.TemporaryDirectory(prefix="bench-pages-") as tmp:
        for i in range(args.repeats):
            downloads = Path(tmp) / f"round{i}"
            downloads.mkdir()
            # a new bonus each round: every run is a new variant, priced and settled anew
            rounds.append(one_round(serve.url, password, region, round(0.05 + 0.01 * i, 4), downloads))
            print(json.dumps(rounds[-1]), flush=True)
            # the baseline, in the same run: the API calls behind each step, without a browser
            api_rounds.append(api_round(serve.url, password, region, round(0.5 + 0.01 * i, 4)))
            print(json.dumps({"api": api_rounds[-1]}), flush=True)
        rss = serve.peak_rss_mib()
    medians = {k: statistics.median(r[k] for r in rounds) for k in STEPS}
    api_medians = {k: statistics.median(r[k] for r in api_rounds) for k in api_rounds[0]}
    if args.json:
        args.json.write_text(json.dumps({"cases": args.cases, "rounds": rounds, "median": medians,
                                         "api_rounds": api_rounds, "api_median": api_medians,
                                         "server_peak_rss_mib": rss}, indent=2), encoding="utf-8")
    command = f"python benchmarks/bench_pages.py --cases {args.cases} --repeats {args.repeats}"

    def line(k: str, v: float) -> str:
        base = api_medians.get(k)
        return (f"| {k.removesuffix('_s').replace('_', ' ')} | {v:.3f} | "
                + (f"{base:.3f} | {v / base:.1f}x |" if base else "(no call) | |"))

    print("\n".join([machine_line(command), "",
                     f"| step ({args.cases:,} cases, 100 hospitals; median of {args.repeats}) | page (s) | "
                     "its API calls alone (s) | page / API |",
                     "|---|---:|---:|---:|", *(line(k, v) for k, v in medians.items()),
                     f"| server peak RSS (MiB) | {rss:,.0f} | | |"]))


if __name__ == "__main__":
    main()
