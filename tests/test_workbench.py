"""The workbench's pages as files (no browser: tests/test_workbench_browser.py drives them in Chromium): served at
/app/ without a token and with a strict Content-Security-Policy, nothing loaded from elsewhere, the vendored ECharts
as its VERSION.md says, values put on the page as text only, and /api/labels scoped like every data route."""

from __future__ import annotations

import hashlib
import re

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("argon2")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient

from dipsim.server import create_app
from dipsim.server.workbench import STATIC_DIR

ECHARTS = STATIC_DIR / "vendor" / "echarts"
ECHARTS_SHA256 = "b66b25aeb4df84e33199dc21694014d336d222cbd9deb0e5a7c14bd6aa0d0fd0"  # echarts 6.1.0 dist/echarts.min.js


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    app = create_app(tmp_path_factory.mktemp("wb") / "data")
    app.state.server.accounts.add("ana", "right-password", "bureau")
    return TestClient(app)


def test_pages_need_no_token_and_carry_a_content_security_policy(client):
    assert client.get("/", follow_redirects=False).headers["location"] == "/app/"
    for path, kind in (("/app/", "text/html"), ("/app/app.js", "javascript"), ("/app/app.css", "text/css"),
                       ("/app/vendor/echarts/echarts.min.js", "javascript")):
        answer = client.get(path)
        assert answer.status_code == 200 and kind in answer.headers["content-type"], path
        policy = answer.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "script-src 'self';" in policy, path
        assert answer.headers["x-content-type-options"] == "nosniff"
    assert client.get("/app/../server/app.py").status_code == 404
    assert client.get("/app/nothing.js").status_code == 404


def test_labels_need_a_token_and_give_levels_in_their_natural_order(client):
    assert client.get("/api/labels").status_code == 401
    token = client.post("/api/login", json={"username": "ana", "password": "right-password"}).json()["token"]
    labels = client.get("/api/labels", headers={"Authorization": f"Bearer {token}"}).json()
    assert labels["levels"] == ["三级甲等", "三级乙等", "三级", "二级甲等", "二级乙等", "二级", "一级"]
    assert labels["columns"]["fund_payout"] == {"zh": "基金支付（元）", "en": "fund payout (yuan)", "kind": "money"}


def test_nothing_is_loaded_from_elsewhere_and_nothing_is_inserted_as_html():
    page = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    script = (STATIC_DIR / "app.js").read_text(encoding="utf-8")
    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert sources and all(not re.match(r"^[a-z]+:|^//", s) for s in sources), sources
    assert "<script>" not in page  # no inline script (the policy forbids it)
    assert not re.search(r"https?://", script)
    # values go in as text: no innerHTML / outerHTML / insertAdjacentHTML / document.write anywhere
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write", script)
    # the one HTML ECharts builds (the tooltip) escapes every value
    tooltip = script[script.index("formatter: (items)"):script.index(".join(\"<br>\") }")]
    assert tooltip.count("encode(") == 3
    # the token lives in sessionStorage, never in a cookie or localStorage
    assert "document.cookie" not in script and 'localStorage.setItem(TOKEN_KEY' not in script


def test_the_vendored_echarts_is_the_one_its_version_file_names():
    digest = hashlib.sha256((ECHARTS / "echarts.min.js").read_bytes()).hexdigest()
    assert digest == ECHARTS_SHA256
    assert ECHARTS_SHA256 in (ECHARTS / "VERSION.md").read_text(encoding="utf-8")
    assert "Apache License" in (ECHARTS / "LICENSE").read_text(encoding="utf-8")
    assert "Apache Software Foundation" in (ECHARTS / "NOTICE").read_text(encoding="utf-8")


def test_money_is_formatted_by_string_arithmetic_in_the_pages():
    """The page's yuan() and yuanCompact(), run in node when there is one, against present.py's rules."""
    import shutil
    import subprocess

    from dipsim.report import present

    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the formatting is checked in the browser tests")
    script = (STATIC_DIR / "app.js").read_text(encoding="utf-8")
    functions = script[script.index("function groupDigits"):script.index("function fixed(")]
    cases = ["0.00", "-0.00", "1234567.89", "-1234.50", "999999999999999999.99", "9999.99", "10000.00",
             "99999999.99", "99999995.00", "100000000.00", "138623456789.12", "-50000.05"]
    program = (f"let lang = 'zh';\n{functions}\n"
               f"for (const c of {cases!r}) console.log(yuan(c) + '|' + yuanCompact(c));")
    out = subprocess.run([node, "-e", program], capture_output=True, text=True, check=True).stdout.splitlines()
    from decimal import Decimal

    for case, line in zip(cases, out, strict=True):
        plain, compact = line.split("|")
        assert plain == present.yuan(Decimal(case)), case
        assert compact == present.money_compact(Decimal(case)), case


def test_a_wheel_carries_every_page_file():
    """pyproject.toml's package data for dipsim.server names every file under static/ (a wheel carries them)."""
    import fnmatch
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    patterns = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"][
        "package-data"]["dipsim.server"]
    files = [p.relative_to(STATIC_DIR.parent).as_posix() for p in STATIC_DIR.rglob("*") if p.is_file()]
    assert len(files) >= 9
    for name in files:
        assert any(fnmatch.fnmatch(name, pattern) and name.count("/") == pattern.count("/") for pattern in patterns), \
            name
