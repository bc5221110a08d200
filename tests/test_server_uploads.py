"""Uploads of `dipsim serve` (issue 19): a bureau user makes a region from claims and hospitals files through the
command line's loader. Fuzzed uploads (bad encodings, huge fields, wrong types, formula cells, HTML in names,
damaged files) never crash the server (no 500, no "internal error"), never lose a row (read = accepted + rejected,
the rejects table holding exactly the rejected rows) and are escaped wherever shown: the JSON is data, the rejects
CSV is text/csv with nosniff and formula-like cells prefixed with ', the rejects Excel holds them as text cells.
Also: the counts equal `dipsim validate`'s on the same file, the size limit (413), bureau only (403), original
names never become paths, and the audit log has every file's sha256."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("argon2")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dipsim.cli import main
from dipsim.server import create_app

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
STORED = re.compile(r"^\d{4}-f[0-9a-f]{16}\.[a-z]+$")  # how an uploaded file is named on disk
FORMULAS = ['=HYPERLINK("http://evil.example/x","click")', "+cmd|' /C calc'!A0", "-1+2", "@SUM(A1:A9)"]
HTML = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>"]


# ---------------------------------------------------------------- inputs


@pytest.fixture(scope="module")
def region_files(tmp_path_factory):
    """A small synthetic region: its claims as rows of text (header first) and its hospitals table as CSV text,
    one hospital renamed with HTML and one with a formula."""
    from dipsim.io.writers import write_csv
    from dipsim.synth import synthesize_region

    root = tmp_path_factory.mktemp("synth")
    synthesize_region(root / "region", cases=600, hospitals=8, seed=7, year=2025)
    parts = sorted((root / "region" / "cases").rglob("*.parquet"))
    cases = pa.concat_tables([pq.read_table(p) for p in parts], promote_options="permissive")
    write_csv(cases, root / "claims.csv", bom=False)
    rows = list(csv.reader(io.StringIO((root / "claims.csv").read_text(encoding="utf-8"))))
    hospitals = list(csv.reader(io.StringIO((root / "region" / "hospitals.csv").read_text(encoding="utf-8-sig"))))
    names = hospitals[0].index("name")
    hospitals[1][names], hospitals[2][names] = HTML[1], FORMULAS[0]
    return {"rows": rows, "hospitals": _csv_text(hospitals), "cases": cases, "parts": parts,
            "hospitals_parquet": root / "region" / "hospitals.parquet"}


def _csv_text(rows: list[list[str]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    data = tmp_path_factory.mktemp("serve") / "data"
    app = create_app(data)
    server = app.state.server
    server.accounts.add("ana", "ana-password", "bureau")
    server.accounts.add("bo", "bo-password", "hospital", "H0001")
    client = TestClient(app)
    tokens = {name: {"Authorization": "Bearer " + client.post(
        "/api/login", json={"username": name, "password": f"{name}-password"}).json()["token"]}
        for name in ("ana", "bo")}
    return {"app": app, "server": server, "client": client, "bureau": tokens["ana"], "hospital": tokens["bo"],
            "data": data}


def _upload(served, files: list[tuple[str, str, bytes]], title: str = "上传区域", process: bool = True) -> dict:
    """Create an upload, PUT each (slot, original name, bytes), process it and wait: the upload's final view.
    Every answer is checked to be no server error."""
    client, bureau = served["client"], served["bureau"]
    made = client.post("/api/uploads", headers=bureau, json={"title": title})
    assert made.status_code == 201, made.text
    upload = made.json()["id"]
    for slot, name, content in files:
        answer = client.put(f"/api/uploads/{upload}/files/{slot}", params={"name": name}, headers=bureau,
                            content=content)
        assert answer.status_code == 200, answer.text
        assert answer.json()["sha256"] == hashlib.sha256(content).hexdigest()
        assert answer.json()["bytes"] == len(content)
    if not process:
        return {"id": upload}
    started = client.post(f"/api/uploads/{upload}/process", headers=bureau)
    assert started.status_code == 202, started.text
    served["server"].uploads.wait()
    view = client.get(f"/api/uploads/{upload}", headers=bureau)
    assert view.status_code == 200
    return view.json()


def _checked(served, view: dict) -> list[dict]:
    """An upload processed without a server fault, its counts reconciled with its rejects table in JSON, CSV and
    Excel (every text cell text, never a formula); the rejects' rows."""
    assert view["status"] in ("done", "failed"), view
    if view["status"] == "failed":
        assert view["error"]["message"] and not view["error"]["message"].startswith("internal error"), view["error"]
    counts = view["counts"]
    if counts is None:  # the claims were not read at all (a damaged file): the loader's message says why
        assert view["status"] == "failed"
        return []
    assert counts["read"] == counts["accepted"] + counts["rejected"], counts
    client, bureau, upload = served["client"], served["bureau"], view["id"]
    first = client.get(f"/api/uploads/{upload}/rejects", params={"limit": 100_000}, headers=bureau).json()
    rows = first["rows"]
    assert first["total_lines"] == len(rows) == counts["reject_lines"]
    assert len({(r["file"], r["row"]) for r in rows}) == counts["rejected"]
    assert all(r["reason"] for r in rows)
    assert all(len(v) <= 1001 for r in rows for v in r.values() if isinstance(v, str))  # a huge field cut
    text = client.get(f"/api/uploads/{upload}/rejects.csv", headers=bureau)
    assert text.status_code == 200 and text.headers["content-type"].startswith("text/csv")
    assert text.headers["x-content-type-options"] == "nosniff"
    assert text.headers["content-disposition"] == f'attachment; filename="rejects_{upload}.csv"'
    table = list(csv.DictReader(io.StringIO(text.content.decode("utf-8-sig"))))
    assert len(table) == len(rows)
    for line, row in zip(table, rows):  # formula-like text comes out prefixed with ', everything else as it was
        for head, key in (("病例编号", "case_id"), ("值", "value"), ("原因", "reason"), ("文件", "file")):
            given = row[key] or ""
            shown = line[head]
            assert shown[:1] not in ("=", "+", "-", "@"), (head, shown)
            if given.endswith("…") and len(given) == 1001:  # cut in the JSON: the CSV holds it whole
                assert shown.lstrip("'").startswith(given[:1000]), head
                continue
            assert shown == (("'" + given) if given[:1] in ("=", "+", "-", "@", "\t", "\r") else given) or \
                "\r" in given, (head, given, shown)
    book = client.get(f"/api/uploads/{upload}/rejects.xlsx", headers=bureau)
    assert book.status_code == 200 and book.headers["content-type"].startswith(XLSX_TYPE)
    from openpyxl import load_workbook

    sheet = load_workbook(io.BytesIO(book.content)).worksheets[0]
    cells = list(sheet.iter_rows())
    assert [c.value for c in cells[0]] == ["文件", "行号", "病例编号", "字段", "值", "原因"]
    assert len(cells) - 1 == len(rows)
    for cell_row in cells[1:]:
        for cell in cell_row:
            assert cell.data_type != "f", (cell.value, cell.data_type)  # never a formula
            if cell.column != 2 and cell.value is not None:
                assert cell.data_type == "s" and isinstance(cell.value, str), (cell.value, cell.data_type)
    return rows


def _claims(rows: list[list[str]], encoding: str = "utf-8") -> bytes:
    return _csv_text(rows).encode(encoding)


def _set(row: list[str], header: list[str], **values) -> list[str]:
    row = list(row)
    for key, value in values.items():
        row[header.index(key)] = value
    return row


# ---------------------------------------------------------------- a region from uploads


def test_a_gb18030_csv_makes_a_region_with_the_command_lines_counts(served, region_files, tmp_path, capsys):
    rows = region_files["rows"]
    header = rows[0]
    bad = [_set(rows[1], header, total_cost="一千"), _set(rows[2], header, los_days="abc"),
           _set(rows[3], header, hospital_id="")]  # the last: no hospital, rejected at settlement
    chinese = [_set(r, header, department="心血管内科") for r in rows[4:]]  # text that is GB18030, not UTF-8
    claims = _claims([header, *bad, *chinese], "gb18030")
    hospitals = region_files["hospitals"].encode("gb18030")
    view = _upload(served, [("claims", "病例明细.csv", claims), ("hospitals", "医院.csv", hospitals)])
    assert view["status"] == "done", view
    rejects = _checked(served, view)
    read = len(rows) - 1
    assert view["counts"]["read"] == read and view["counts"]["rejected"] == 3
    assert view["counts"]["rejected_at_settlement"] == 1
    assert {r["row"] for r in rejects} == {1, 2, 3} and {r["file"] for r in rejects} == {"病例明细.csv"}
    assert any("60%" in w and "budget" in w for w in view["warnings"])  # the budget was assumed: said
    # the same file through `dipsim validate`: the same rows read, accepted and rejected by validation
    (tmp_path / "claims.csv").write_bytes(claims)
    assert main(["validate", str(tmp_path / "claims.csv"), "-o", str(tmp_path / "out"), "-q"]) == 0
    capsys.readouterr()
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text(encoding="utf-8"))
    totals = manifest["totals"]
    assert totals["rows_read"] == view["counts"]["read"]
    assert totals["rejected"] == view["counts"]["rejected"] - view["counts"]["rejected_at_settlement"]
    assert totals["accepted"] == view["counts"]["accepted"] + view["counts"]["rejected_at_settlement"]
    assert manifest["inputs"][0]["encoding"].lower().replace("-", "") == "gb18030"
    # the new region is listed and loads, with the upload's title and the accepted cases
    client, bureau = served["client"], served["bureau"]
    listed = {r["id"]: r for r in client.get("/api/regions", headers=bureau).json()["regions"]}
    assert listed[view["region"]]["title"] == "上传区域"
    overview = client.get(f"/api/regions/{view['region']}", headers=bureau).json()
    assert overview["cases"] == view["counts"]["accepted"] and overview["rejected"] == 3
    assert overview["rows_read"] == read
    assert overview["hospitals"] >= 1
    # the audit log: the files with their sha256, and the region made
    entries = client.get("/api/audit", headers=bureau).json()["entries"]
    files = [e for e in entries if e["action"] == "upload file" and e["upload"] == view["id"]]
    assert sorted(e["sha256"] for e in files) == sorted(hashlib.sha256(b).hexdigest() for b in (claims, hospitals))
    assert {e["name"] for e in files} == {"病例明细.csv", "医院.csv"} and all(e["user"] == "ana" for e in files)
    made = [e for e in entries if e["action"] == "create region" and e["upload"] == view["id"]]
    assert len(made) == 1 and made[0]["region"] == view["region"] and made[0]["time"]
    assert made[0]["counts"] == view["counts"]


def test_excel_and_parquet_uploads_and_an_uploaded_policy(served, region_files, tmp_path):
    """Claims as .xlsx and as several Parquet partitions (read as one folder, as `dipsim validate DIR`), the
    hospitals as .xlsx and .parquet; a policy TOML with budgets: no budget assumed."""
    import openpyxl

    rows = region_files["rows"]
    book = openpyxl.Workbook()
    for row in rows[:201]:
        book.active.append(row)
    book.save(tmp_path / "claims.xlsx")
    hbook = openpyxl.Workbook()
    for row in csv.reader(io.StringIO(region_files["hospitals"])):
        hbook.active.append(row)
    hbook.save(tmp_path / "hospitals.xlsx")
    view = _upload(served, [("claims", "claims.xlsx", (tmp_path / "claims.xlsx").read_bytes()),
                            ("hospitals", "hospitals.xlsx", (tmp_path / "hospitals.xlsx").read_bytes())])
    assert view["status"] == "done", view
    _checked(served, view)
    assert view["counts"]["read"] == 200 and view["counts"]["rejected"] == 0
    parts = [("claims", f"month {i}.parquet", p.read_bytes()) for i, p in enumerate(region_files["parts"][:3])]
    expected = sum(pq.read_metadata(p).num_rows for p in region_files["parts"][:3])
    policy = ('[meta]\nname = "上传的政策"\n[payment]\nmode = "dip"\n'
              '[budget.total]\n"990100-employee" = 1e7\n"990100-resident" = 1e7\n')
    view = _upload(served, [*parts, ("hospitals", "h.parquet", region_files["hospitals_parquet"].read_bytes()),
                            ("policy", "policy.toml", policy.encode())])
    _checked(served, view)
    if view["status"] == "failed":  # a pool of the three months not in the policy: the command line's message
        pytest.fail(view["error"]["message"])
    assert view["counts"]["read"] == expected
    assert not any("60%" in w for w in view["warnings"])
    overview = served["client"].get(f"/api/regions/{view['region']}", headers=served["bureau"]).json()
    assert overview["baseline"]["name"] == "上传的政策"
    assert sum(_fen(p["budget"]) for p in overview["pools"]) == 2 * 10**9  # 2 x 1e7 yuan, in fen


def _fen(text: str) -> int:
    from decimal import Decimal

    return int(Decimal(text) * 100)


# ---------------------------------------------------------------- hand-made bad uploads


def test_formula_cells_html_huge_fields_and_wrong_types(served, region_files):
    rows = region_files["rows"]
    header = rows[0]
    body = rows[1:41]
    damaged = [
        _set(body[0], header, total_cost=FORMULAS[0]),
        _set(body[1], header, total_cost=FORMULAS[1]),
        _set(body[2], header, total_cost=FORMULAS[2]),
        _set(body[3], header, age_years=FORMULAS[3]),
        _set(body[4], header, case_id=HTML[0], total_cost="abc"),
        _set(body[5], header, case_id=HTML[1]),  # accepted: an id is text
        _set(body[6], header, department="科" * 1_000_000),  # a 1 MB field (3 MB in UTF-8)
        _set(body[7], header, total_cost="1,234.50"),  # a number as text with a thousands separator
        _set(body[8], header, los_days="三天"),
        _set(body[9], header, discharge_date="2025-13-45"),
        _set(body[10], header, sex="<b>男</b>"),
        _set(body[11], header, case_id=FORMULAS[0]),
    ]
    claims = _claims([header, *damaged, *body[12:]])
    view = _upload(served, [("claims", "<b>claims</b>.csv", claims),
                            ("hospitals", "h.csv", region_files["hospitals"].encode())])
    assert view["status"] == "done", view
    rejects = _checked(served, view)
    assert view["counts"]["read"] == 40
    rejected = {r["row"] for r in rejects}
    assert {1, 2, 3, 4, 5, 9, 10} <= rejected and 6 not in rejected  # the bad numbers, dates and the text cost
    assert {r["file"] for r in rejects} == {"<b>claims</b>.csv"}  # the original name, as data
    values = {r["value"] for r in rejects}
    assert FORMULAS[0] in values and FORMULAS[2] in values  # kept as they were, shown as text
    assert HTML[0] in {r["case_id"] for r in rejects}
    client, bureau = served["client"], served["bureau"]
    text = client.get(f"/api/uploads/{view['id']}/rejects.csv", headers=bureau).content.decode("utf-8-sig")
    assert "'=HYPERLINK(" in text and "'-1+2" in text and "'+cmd" in text
    assert "<script>alert(1)</script>" in text  # text/csv with nosniff: never read as a page
    from openpyxl import load_workbook

    sheet = load_workbook(io.BytesIO(client.get(f"/api/uploads/{view['id']}/rejects.xlsx",
                                                headers=bureau).content)).worksheets[0]
    formula_cells = [c for row in sheet.iter_rows(min_row=2) for c in row if c.value in FORMULAS]
    assert len(formula_cells) >= 3 and all(c.data_type == "s" for c in formula_cells)
    # the JSON is data: the names with HTML come back as the same characters, the content type JSON
    answer = client.get(f"/api/uploads/{view['id']}", headers=bureau)
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["files"][0]["name"] == "<b>claims</b>.csv"
    overview = client.get(f"/api/regions/{view['region']}", headers=bureau)
    assert overview.status_code == 200
    loaded = served["server"].region(view["region"])
    assert HTML[1] in loaded.names.values() and FORMULAS[0] in loaded.names.values()


def _bad_bytes(rows, encoding: str) -> bytes:
    """Rows 1-30 of the claims in `encoding`, rows 3 and 7 holding bytes that are not text in it."""
    lines = _claims(rows[:31], encoding).split(b"\n")
    junk = b"\xff\xfe\x80" if encoding == "utf-8" else b"\xff\x80\xff"
    lines[3] = lines[3].replace(b",", b"," + junk, 1)
    lines[7] = lines[7] + junk
    return b"\n".join(lines)


@pytest.mark.parametrize("encoding", ["utf-8", "gb18030"])
def test_invalid_bytes_reject_their_rows_only(served, region_files, encoding):
    rows = region_files["rows"]
    view = _upload(served, [("claims", f"claims-{encoding}.csv", _bad_bytes(rows, encoding)),
                            ("hospitals", "h.csv", region_files["hospitals"].encode())])
    assert view["status"] == "done", view
    rejects = _checked(served, view)
    assert view["counts"]["read"] == 30
    assert {r["row"] for r in rejects} == {3, 7}


def _damaged_files(region_files, tmp_path) -> dict[str, bytes]:
    import openpyxl

    book = openpyxl.Workbook()
    for row in region_files["rows"][:50]:
        book.active.append(row)
    book.save(tmp_path / "c.xlsx")
    xlsx = (tmp_path / "c.xlsx").read_bytes()
    parquet = region_files["parts"][0].read_bytes()
    header = _claims(region_files["rows"][:1])
    return {"truncated.xlsx": xlsx[: len(xlsx) // 2], "truncated.parquet": parquet[: len(parquet) // 2],
            "empty.csv": b"", "header only.csv": header, "pdf.csv": b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n",
            "text.xlsx": header, "csv.parquet": header, "nul.csv": b"\x00" * 5000,
            "no columns.csv": b"a,b\n1,2\n"}


def test_damaged_and_mislabelled_files_are_answered_with_the_loaders_message(served, region_files, tmp_path):
    for name, content in _damaged_files(region_files, tmp_path).items():
        view = _upload(served, [("claims", name, content), ("hospitals", "h.csv", region_files["hospitals"].encode())])
        _checked(served, view)
        assert view["status"] == "failed", (name, view)
        message = view["error"]["message"]
        assert name in message or "claims" in message, (name, message)  # names the file as the user knows it
        assert str(served["data"]) not in message  # and never the server's folders
    # a damaged hospitals table or policy: failed with the loader's message
    for slot, name, content in (("hospitals", "h.csv", b"hospital_id,level\nH1,1\n"),
                                ("hospitals", "h.xlsx", b"PK\x03\x04junk"),
                                ("hospitals", "h.csv", "hospital_id,level,type\nH1,一级,综合\nH1,二级,综合\n".encode()),
                                ("policy", "p.toml", b"[budget\nx = 1"), ("policy", "p.toml", b"\xff\xfe"),
                                ("policy", "p.toml", b"[outlier]\nhgh_ratio = 2.0\n")):
        files = [("claims", "c.csv", _claims(region_files["rows"][:30]))]
        files.append((slot, name, content))
        if slot != "hospitals":
            files.append(("hospitals", "h.csv", region_files["hospitals"].encode()))
        view = _upload(served, files)
        assert view["status"] == "failed", (slot, content, view)
        assert name in view["error"]["message"] and view["error"]["problems"], view["error"]
        assert str(served["data"]) not in json.dumps(view)
    # a name without an allowed suffix is refused before any byte is kept
    upload = _upload(served, [], process=False)["id"]
    client, bureau = served["client"], served["bureau"]
    for slot, name in (("claims", "claims.exe"), ("claims", "../../x"), ("hospitals", "h.toml"),
                       ("policy", "p.csv"), ("claims", "noext")):
        answer = client.put(f"/api/uploads/{upload}/files/{slot}", params={"name": name}, headers=bureau,
                            content=b"a,b\n")
        assert answer.status_code == 422, (slot, name, answer.text)
    assert client.put(f"/api/uploads/{upload}/files/other", params={"name": "x.csv"}, headers=bureau,
                      content=b"x").status_code == 422
    assert client.post(f"/api/uploads/{upload}/process", headers=bureau).status_code == 422  # no files yet
    folder = served["data"] / "uploads" / upload / "files"
    assert not [p for p in folder.rglob("*") if p.is_file()]


# ---------------------------------------------------------------- fuzzed rows


FIELD_TEXT = st.one_of(
    st.sampled_from(FORMULAS + HTML + ["", " ", "NaN", "-", "1e308", "1,234.5", "０１２", "男", '"', '""', "\r",
                                       "a\nb", ",", "\t", "\x00", "\x1b[2J", "科" * 40_000]),
    st.text(max_size=30),
)


@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                 HealthCheck.data_too_large])
@given(data=st.data())
def test_fuzzed_rows_never_crash_and_never_lose_a_row(served, region_files, data):
    """Rows of the synthetic claims with fields replaced by fuzzed text (formulas, HTML, control characters,
    quotes, line breaks, huge fields, any Unicode), written in UTF-8 or GB18030, some lines with bytes that are
    not text in it: the server answers, and read = accepted + rejected over every table it shows."""
    rows = region_files["rows"]
    header = rows[0]
    n = data.draw(st.integers(5, 25))
    body = [list(r) for r in rows[1:n + 1]]
    for _ in range(data.draw(st.integers(0, 12))):
        r, c = data.draw(st.integers(0, n - 1)), data.draw(st.integers(0, len(header) - 1))
        body[r][c] = data.draw(FIELD_TEXT)
    encoding = data.draw(st.sampled_from(["utf-8", "utf-8-sig", "gb18030"]))
    content = _csv_text([header, *body]).encode(encoding, errors="replace")
    if data.draw(st.booleans()):
        at = data.draw(st.integers(0, len(content)))
        content = content[:at] + data.draw(st.binary(min_size=1, max_size=6)) + content[at:]
    view = _upload(served, [("claims", data.draw(st.sampled_from(["c.csv", "C.TXT", "<i>c</i>.csv"])), content),
                            ("hospitals", "h.csv", region_files["hospitals"].encode())])
    _checked(served, view)


# ---------------------------------------------------------------- limits, roles, names


def test_an_upload_over_the_limit_gets_413_and_leaves_nothing(tmp_path, region_files):
    app = create_app(tmp_path / "data", max_upload_bytes=10_000)
    app.state.server.accounts.add("ana", "ana-password", "bureau")
    client = TestClient(app)
    bureau = {"Authorization": "Bearer " + client.post(
        "/api/login", json={"username": "ana", "password": "ana-password"}).json()["token"]}
    upload = client.post("/api/uploads", headers=bureau, json={"title": "x"}).json()["id"]
    url = f"/api/uploads/{upload}/files/claims"
    assert client.put(url, params={"name": "c.csv"}, headers=bureau, content=b"x" * 10_001).status_code == 413

    def chunks():  # no Content-Length: counted as it streams
        for _ in range(20):
            yield b"y" * 1000

    assert client.put(url, params={"name": "c.csv"}, headers=bureau, content=chunks()).status_code == 413
    # the files of an upload together: 6,000 bytes kept, then 6,000 more are over
    assert client.put(url, params={"name": "a.csv"}, headers=bureau, content=b"z" * 6000).status_code == 200
    assert client.put(url, params={"name": "b.csv"}, headers=bureau, content=b"z" * 6000).status_code == 413
    files = [p for p in (tmp_path / "data" / "uploads" / upload).rglob("*") if p.is_file()]
    assert len(files) == 1 and files[0].stat().st_size == 6000  # no partial file left
    assert client.get(f"/api/uploads/{upload}", headers=bureau).json()["files"][0]["name"] == "a.csv"
    # two files streaming at once count together: 6,000 bytes kept, 2 x 3,000 more streaming, one of them is over
    second = client.post("/api/uploads", headers=bureau, json={"title": "y"}).json()["id"]
    from concurrent.futures import ThreadPoolExecutor

    def slow():
        for _ in range(6):
            time.sleep(0.05)
            yield b"w" * 1000

    put = f"/api/uploads/{second}/files/claims"
    assert client.put(put, params={"name": "a.parquet"}, headers=bureau, content=b"z" * 3000).status_code == 200
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda n: client.put(put, params={"name": f"{n}.parquet"}, headers=bureau,
                                                     content=slow()).status_code, (1, 2)))
    assert sorted(answers) == [200, 413], answers
    kept = [p for p in (tmp_path / "data" / "uploads" / second).rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in kept) == 9000
    # a JSON body keeps its own 64 KB limit
    assert client.post("/api/uploads", headers=bureau, json={"title": "x" * 70_000}).status_code == 413


def test_uploads_are_the_bureaus(served, region_files):
    client, hospital = served["client"], served["hospital"]
    view = _upload(served, [("claims", "c.csv", _claims(region_files["rows"][:30])),
                            ("hospitals", "h.csv", region_files["hospitals"].encode())])
    upload = view["id"]
    for method, url in (("POST", "/api/uploads"), ("GET", "/api/uploads"), ("GET", f"/api/uploads/{upload}"),
                        ("PUT", f"/api/uploads/{upload}/files/claims?name=c.csv"),
                        ("POST", f"/api/uploads/{upload}/process"), ("GET", f"/api/uploads/{upload}/rejects"),
                        ("GET", f"/api/uploads/{upload}/rejects.csv"), ("GET", f"/api/uploads/{upload}/rejects.xlsx")):
        answer = client.request(method, url, headers=hospital, content=b"a,b\n1,2\n" if method == "PUT" else None)
        assert answer.status_code == 403, (method, url, answer.text)
    assert not [e for e in client.get("/api/audit", headers=served["bureau"]).json()["entries"]
                if e.get("user") == "bo" and "upload" in e["action"]]
    # unknown and malformed ids: 404 / 422, never a path
    bureau = served["bureau"]
    assert client.get("/api/uploads/u0000000000000000", headers=bureau).status_code == 404
    assert client.get("/api/uploads/..%2F..%2Fusers.json", headers=bureau).status_code in (404, 422)
    # a processed upload takes no more files
    assert client.put(f"/api/uploads/{upload}/files/claims", params={"name": "c.csv"}, headers=bureau,
                      content=b"a\n").status_code == 409


def test_original_names_never_become_paths(served, region_files):
    names = ["../../x.csv", "/etc/passwd.csv", "..\\..\\win.csv", "a/b/c.csv", "con.csv", "x\x00y.csv",
             "<img src=x onerror=alert(1)>.csv"]
    upload = _upload(served, [("claims", name, b"a,b\n1,2\n") for name in names], process=False)["id"]
    data = served["data"]
    folder = data / "uploads" / upload / "files"
    stored = [p for p in folder.rglob("*") if p.is_file()]
    assert len(stored) == len(names)
    assert all(STORED.match(p.name) and p.parent == folder / "claims" for p in stored), stored
    assert not (data.parent / "x.csv").exists() and not (data / "x.csv").exists()
    view = served["client"].get(f"/api/uploads/{upload}", headers=served["bureau"]).json()
    assert [f["name"] for f in view["files"]] == [n.replace("\x00", "\\x00") for n in names]
    assert all("stored" not in f for f in view["files"])  # the server's names are not shown


# ---------------------------------------------------------------- a larger file (slow)


@pytest.mark.slow
def test_a_200k_row_upload_and_its_throughput(tmp_path, capsys):
    """200,000 rows of synthetic claims as a GB18030 CSV: uploaded, processed, and timed against `dipsim validate`
    on the same file (printed with -s)."""
    from dipsim.io.writers import write_csv
    from dipsim.synth import synthesize_region

    synthesize_region(tmp_path / "region", cases=200_000, hospitals=60, seed=3, year=2025)
    parts = sorted((tmp_path / "region" / "cases").rglob("*.parquet"))
    write_csv(pa.concat_tables([pq.read_table(p) for p in parts], promote_options="permissive"),
              tmp_path / "claims.csv", bom=False)
    claims = (tmp_path / "claims.csv").read_text(encoding="utf-8").encode("gb18030")
    (tmp_path / "claims.csv").write_bytes(claims)
    app = create_app(tmp_path / "data")
    app.state.server.accounts.add("ana", "ana-password", "bureau")
    client = TestClient(app)
    bureau = {"Authorization": "Bearer " + client.post(
        "/api/login", json={"username": "ana", "password": "ana-password"}).json()["token"]}
    served = {"client": client, "bureau": bureau, "server": app.state.server}
    started = time.perf_counter()
    hospitals = (tmp_path / "region" / "hospitals.parquet").read_bytes()
    view = _upload(served, [("claims", "claims.csv", claims), ("hospitals", "h.parquet", hospitals)])
    upload_s = time.perf_counter() - started
    assert view["status"] == "done", view
    assert view["counts"]["read"] == 200_000 == view["counts"]["accepted"] + view["counts"]["rejected"]
    started = time.perf_counter()
    assert main(["validate", str(tmp_path / "claims.csv"), "-o", str(tmp_path / "out"), "-q"]) == 0
    validate_s = time.perf_counter() - started
    capsys.readouterr()
    with capsys.disabled():
        print(f"\n200,000 rows, {len(claims) / 2**20:.1f} MiB GB18030 CSV: upload + region {upload_s:.1f} s "
              f"({200_000 / upload_s:,.0f} rows/s; processing {view['elapsed_s']:.1f} s); dipsim validate "
              f"{validate_s:.1f} s ({200_000 / validate_s:,.0f} rows/s)")


def test_the_upload_page_inserts_text_only_and_loads_nothing_from_elsewhere(served):
    from dipsim.server.workbench import STATIC_DIR

    script = (STATIC_DIR / "upload.js").read_text(encoding="utf-8")
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(", script)
    assert not re.search(r"https?://", script)  # API calls and downloads on this server only
    page = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    assert page.index('src="app.js"') < page.index('src="upload.js"')  # it uses app.js's globals
    answer = served["client"].get("/app/upload.js")
    assert answer.status_code == 200 and "javascript" in answer.headers["content-type"]


def test_large_uploads_are_processed_in_a_child_process_with_the_same_answers(served, region_files):
    """Claims over `process_bytes` are read in a spawned child (the catalogue step holds the GIL for up to 0.8 s on
    1M rows): the same counts, rejects and messages as in the worker thread, a policy's problems included."""
    rows = region_files["rows"]
    header = rows[0]
    claims = _claims([header, _set(rows[1], header, total_cost=FORMULAS[0]), *rows[2:60]])
    hospitals = ("hospitals", "h.csv", region_files["hospitals"].encode())
    uploads = served["server"].uploads
    seen = {}
    for where, limit in (("thread", 1 << 40), ("child", 0)):
        uploads.process_bytes = limit
        try:
            view = _upload(served, [("claims", "c.csv", claims), hospitals])
            bad = _upload(served, [("claims", "c.csv", claims), hospitals,
                                   ("policy", "p.toml", b"[outlier]\nhgh_ratio = 2.0\n")])
        finally:
            uploads.process_bytes = 16 << 20
        assert view["status"] == "done", view
        seen[where] = (view["counts"], _checked(served, view), bad["status"], bad["error"], bad["counts"])
    assert seen["thread"] == seen["child"]
    assert seen["child"][2] == "failed" and "outlier.high_ratio" in seen["child"][3]["problems"][0]


def test_a_restart_keeps_uploads_and_fails_the_unfinished(served, region_files):
    view = _upload(served, [("claims", "c.csv", _claims(region_files["rows"][:30])),
                            ("hospitals", "h.csv", region_files["hospitals"].encode())])
    unfinished = _upload(served, [("claims", "c.csv", b"x")], process=False)["id"]
    served["server"].data.uploads.update(unfinished, status="processing")  # as if the server stopped mid-way
    again = create_app(served["data"])
    client = TestClient(again)
    again.state.server.accounts.add("cy", "cy-password", "bureau")
    token = {"Authorization": "Bearer " + client.post(
        "/api/login", json={"username": "cy", "password": "cy-password"}).json()["token"]}
    kept = client.get(f"/api/uploads/{view['id']}", headers=token).json()
    assert kept["status"] == "done" and kept["counts"] == view["counts"] and kept["region"] == view["region"]
    overview = client.get(f"/api/regions/{view['region']}", headers=token).json()
    assert overview["rows_read"] == view["counts"]["read"] and overview["rejected"] == view["counts"]["rejected"]
    stopped = client.get(f"/api/uploads/{unfinished}", headers=token).json()
    assert stopped["status"] == "failed" and "stopped" in stopped["error"]["message"]
    served["server"].data.uploads.update(unfinished, status="failed")
