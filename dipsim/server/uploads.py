"""Uploads of `dipsim serve`: a bureau user makes a region from claims files and a hospitals table (and optionally
a policy TOML) sent from the browser, through the command line's loader (`regions.assemble_region`: the steps of
`dipsim validate`, `region.load_hospitals`, `catalog build`, as the demo region is made).

* An upload (POST /api/uploads) is a folder DIR/uploads/<id>/ and a record in DIR/uploads/index.json. Each file is
  sent as the raw body of one request (PUT /api/uploads/<id>/files/<slot>?name=ORIGINAL) and streamed to disk under
  a generated name (files/<slot>/NNNN-f<16 hex>.<suffix>); the original name is kept as data only, its suffix
  (from an allow-list per slot) picking the reader. Nothing a request names becomes a path.
* The bytes of an upload (all its files together) are limited (`max_bytes`, `dipsim serve --max-upload-mb`),
  counted as they stream: over it, 413 and the partial file is deleted.
* Processing (POST .../process) runs in its own worker thread, off the event loop, with its step and the rows read
  so far in GET /api/uploads/<id>. When done, the region is in DIR/regions/<id>/ and GET /api/regions; when not,
  the loader's InputError messages are the upload's error (the stored paths shown as the original names).
* The rejected rows (validation's and settlement's, one line per reason, REJECT_SCHEMA) are kept in
  rejects.parquet and downloadable as CSV and Excel through `report.export` (formula-like text stays text).
  The counts always reconcile: read = accepted + rejected.
* Every file (its original name, bytes, sha256), every processing and every region made is in the audit log.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from dipsim.io.errors import InputError, printable
from dipsim.io.readers import CSV_SUFFIXES, EXCEL_SUFFIXES, PARQUET_SUFFIXES
from dipsim.report.present import Column
from dipsim.schema import REJECT_SCHEMA
from dipsim.server.store import DataFolder, new_id, now

log = logging.getLogger(__name__)

MAX_UPLOAD_BYTES = 2 << 30  # an upload's files together (2 GiB)
MAX_PENDING = 8  # uploads queued or processing at once
# claims of this many bytes or more are read, checked and catalogued in a child process (`python -m
# dipsim.server.uploads JOB`, one an upload): those steps hold the GIL for up to 0.8 s at a time on 1M rows, which
# would stall the server's other requests; a child costs about a second to start, so small uploads stay in the
# worker thread
PROCESS_BYTES = 16 << 20
PROGRESS_FILE = "progress.json"
WRITE_BYTES = 1 << 20  # streamed bytes are written (and hashed) off the event loop this many at a time
SLOTS: dict[str, frozenset[str]] = {
    "claims": frozenset(CSV_SUFFIXES | EXCEL_SUFFIXES | PARQUET_SUFFIXES),
    "hospitals": frozenset({".csv", ".txt", ".xlsx", ".xlsm", ".parquet", ".pq"}),
    "policy": frozenset({".toml"}),
}
SINGLE = ("hospitals", "policy")  # one file each: a second one replaces the first
SLOT_PATTERN = "^(" + "|".join(SLOTS) + ")$"
STEPS = ("hospitals", "validate", "settle", "policy", "catalog", "load")
REJECTS_FILE = "rejects.parquet"
BASELINE_NAME = "DIP baseline (scenarios/baseline.toml, budget 60% of cost)"
# the rejects table's columns for people (report.export)
REJECT_COLUMNS: dict[str, Column] = {
    "file": Column("文件", "file"), "row": Column("行号", "row"), "case_id": Column("病例编号", "case id"),
    "field": Column("字段", "field"), "value": Column("值", "value"), "reason": Column("原因", "reason"),
}


class UploadError(Exception):
    """A request about an upload that cannot be done: `status` is its HTTP status."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def suffix_of(name: str, slot: str) -> str:
    """The suffix of an original file name (lower case, from the slot's allow-list): UploadError 422 otherwise."""
    suffix = "." + name.rsplit(".", 1)[1].lower() if "." in name else ""
    if suffix not in SLOTS[slot]:
        raise UploadError(422, f"{printable(name)!r}: a {slot} file must end in one of "
                               f"{', '.join(sorted(SLOTS[slot]))}")
    return suffix


def shown_name(name: str) -> str:
    """An original file name as data: control characters escaped, at most 255 characters."""
    return printable(name.strip())[:255] or "(no name)"


class Uploads:
    """The uploads of a data folder, and the worker that makes regions of them. `register(region_id, record,
    loaded)` is called with each region made (the server adds it to its index and loaded regions)."""

    def __init__(self, data: DataFolder, register: Callable, max_bytes: int = MAX_UPLOAD_BYTES,
                 max_pending: int = MAX_PENDING, process_bytes: int = PROCESS_BYTES):
        self.data, self.register, self.max_bytes, self.max_pending = data, register, max_bytes, max_pending
        self.process_bytes = process_bytes
        self.index = data.uploads
        self.pending = 0
        self._streaming: dict[str, int] = {}  # bytes of files being received, per upload
        self._lock = threading.Lock()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dipsim-upload")
        for key, record in self.index.items():  # one the last server did not finish will not finish now
            if record.get("status") in ("queued", "processing"):
                self.index.update(key, status="failed", error={
                    "message": "the server stopped before the upload was processed: process it again",
                    "problems": []})

    # ------------------------------------------------------------ records

    def folder(self, upload_id: str) -> Path:
        folder = self.index.folder(upload_id)
        if folder is None:
            raise UploadError(404, "no such upload")
        return folder

    def record(self, upload_id: str) -> dict:
        record = self.index.get(upload_id)
        if record is None:
            raise UploadError(404, "no such upload")
        return record

    def create(self, title: str, user) -> tuple[str, dict]:
        upload_id = new_id("upload")
        record = {"title": title.strip() or "uploaded region", "user": user.name, "created": now(), "status": "open",
                  "files": [], "step": None, "counts": None, "warnings": [], "error": None, "region": None}
        (self.data.root / "uploads" / upload_id / "files").mkdir(parents=True)
        self.index.put(upload_id, record)
        self.data.audit.write(action="upload", user=user.name, role=user.role, upload=upload_id, title=record["title"])
        return upload_id, record

    def view(self, upload_id: str) -> dict:
        """The record as the API shows it: stored names left out, the live step and rows read while processing."""
        record = self.record(upload_id)
        files = [{k: f[k] for k in ("id", "slot", "name", "bytes", "sha256", "time")} for f in record["files"]]
        live = _read_progress(self.data.root / "uploads" / upload_id / PROGRESS_FILE) \
            if record["status"] in ("queued", "processing") else {}
        return {"id": upload_id, "title": record["title"], "user": record["user"], "created": record["created"],
                "status": record["status"], "step": live.get("step", record.get("step")),
                "rows_read_so_far": live.get("rows_read"), "files": files, "counts": record.get("counts"),
                "warnings": record.get("warnings") or [], "error": record.get("error"),
                "region": record.get("region"), "finished": record.get("finished"),
                "elapsed_s": record.get("elapsed_s"), "max_bytes": self.max_bytes}

    # ------------------------------------------------------------ files

    def _used(self, upload_id: str, slot: str) -> int:
        """Bytes of the upload: its files kept (but the one a file of a single slot replaces) and those streaming."""
        record = self.record(upload_id)
        kept = sum(f["bytes"] for f in record["files"] if not (slot in SINGLE and f["slot"] == slot))
        return kept + self._streaming.get(upload_id, 0)

    def _done_streaming(self, upload_id: str, size: int) -> None:
        left = self._streaming.get(upload_id, 0) - size
        if left > 0:
            self._streaming[upload_id] = left
        else:
            self._streaming.pop(upload_id, None)

    async def receive(self, upload_id: str, slot: str, name: str, chunks: AsyncIterator[bytes], user,
                      declared: int | None = None) -> dict:
        """Stream one file (the request body's `chunks`, `declared` bytes by its Content-Length when given) to disk
        under a generated name, counting its bytes, with those of the upload's other files kept or streaming,
        against the upload's limit (UploadError 413 over it, the partial file deleted) and hashing them. Returns
        the file's record (original name, bytes, sha256)."""
        import anyio

        folder = self.folder(upload_id)
        name = shown_name(name)
        suffix = suffix_of(name, slot)
        record = self.record(upload_id)
        if record["status"] not in ("open", "failed"):
            raise UploadError(409, f"the upload is {record['status']}: start a new upload to send more files")
        too_large = UploadError(413, f"the upload is over its limit of {self.max_bytes:,} bytes "
                                     "(dipsim serve --max-upload-mb)")
        if declared is not None and self._used(upload_id, slot) + declared > self.max_bytes:
            raise too_large
        file_id = new_id("file")
        target_dir = folder / "files" / slot
        target_dir.mkdir(parents=True, exist_ok=True)
        number = len(record["files"]) + 1
        target = target_dir / f"{number:04d}-{file_id}{suffix}"
        partial = target.with_name(target.name + ".part")
        digest, size, buffer = hashlib.sha256(), 0, bytearray()

        def flush(out, data: bytes) -> None:
            out.write(data)
            digest.update(data)

        def count(n: int) -> None:
            with self._lock:
                if self._used(upload_id, slot) + n > self.max_bytes:
                    raise too_large
                self._streaming[upload_id] = self._streaming.get(upload_id, 0) + n

        try:
            with open(partial, "wb") as out:
                async for chunk in chunks:
                    count(len(chunk))
                    size += len(chunk)
                    buffer += chunk
                    if len(buffer) >= WRITE_BYTES:
                        data, buffer = bytes(buffer), bytearray()
                        await anyio.to_thread.run_sync(flush, out, data)
                if buffer:
                    await anyio.to_thread.run_sync(flush, out, bytes(buffer))
            partial.rename(target)
        except BaseException as exc:
            partial.unlink(missing_ok=True)
            with self._lock:
                self._done_streaming(upload_id, size)
            if isinstance(exc, OSError):  # a full disk: said, not a server fault
                raise UploadError(507, f"{name}: cannot be stored ({exc.strerror or exc})") from None
            raise
        entry = {"id": file_id, "slot": slot, "name": name, "stored": target.relative_to(folder).as_posix(),
                 "bytes": size, "sha256": digest.hexdigest(), "time": now()}
        with self._lock:
            self._done_streaming(upload_id, size)  # the file is kept now, or deleted
            record = self.record(upload_id)
            if record["status"] not in ("open", "failed"):
                target.unlink(missing_ok=True)
                raise UploadError(409, f"the upload is {record['status']}: start a new upload to send more files")
            replaced = [f for f in record["files"] if slot in SINGLE and f["slot"] == slot]
            for old in replaced:
                (folder / old["stored"]).unlink(missing_ok=True)
            files = [f for f in record["files"] if f not in replaced] + [entry]
            self.index.update(upload_id, files=files)
        self.data.audit.write(action="upload file", user=user.name, role=user.role, upload=upload_id, slot=slot,
                              name=name, bytes=size, sha256=entry["sha256"], replaced=[f["sha256"] for f in replaced])
        return {k: entry[k] for k in ("id", "slot", "name", "bytes", "sha256", "time")}

    # ------------------------------------------------------------ processing

    def submit(self, upload_id: str, user) -> dict:
        """Queue the upload's processing: UploadError 409 when it is not open (or failed), 422 without claims or
        hospitals, 503 when MAX_PENDING are queued."""
        with self._lock:
            record = self.record(upload_id)
            if record["status"] not in ("open", "failed"):
                raise UploadError(409, f"the upload is {record['status']}")
            slots = [f["slot"] for f in record["files"]]
            missing = [s for s in ("claims", "hospitals") if s not in slots]
            if missing:
                raise UploadError(422, f"the upload has no {' and no '.join(missing)} file: send "
                                       + ", ".join(f"PUT /api/uploads/{upload_id}/files/{s}" for s in missing))
            if self.pending >= self.max_pending:
                raise UploadError(503, f"{self.pending} uploads are being processed: try again shortly")
            self.pending += 1
            self.index.update(upload_id, status="queued", step=None, counts=None, warnings=[], error=None,
                              region=None, finished=None, elapsed_s=None)
        _write_progress(self.folder(upload_id) / PROGRESS_FILE, None, 0)
        self.data.audit.write(action="process upload", user=user.name, role=user.role, upload=upload_id,
                              files=[{"slot": f["slot"], "name": f["name"], "sha256": f["sha256"]}
                                     for f in record["files"]])
        try:
            self.executor.submit(self._process, upload_id, user)
        except BaseException:
            self._finished(upload_id, "failed", error={"message": "the upload could not be queued", "problems": []})
            raise
        return self.view(upload_id)

    def _finished(self, upload_id: str, status: str, **fields) -> None:
        self.index.update(upload_id, status=status, finished=now(), **fields)
        with self._lock:
            self.pending -= 1

    def _process(self, upload_id: str, user) -> None:
        """Make the region (in the worker thread): whatever happens, the upload ends done or failed."""
        started = time.perf_counter()
        try:
            self._make_region(upload_id, user, started)
        except Exception as exc:  # not the input's fault (those are said by _make_region): said as such
            log.exception("upload %s", upload_id)
            self._finished(upload_id, "failed", error={"message": f"internal error ({type(exc).__name__})",
                                                       "problems": []},
                           elapsed_s=round(time.perf_counter() - started, 3))
        finally:
            (self.data.root / "uploads" / upload_id / PROGRESS_FILE).unlink(missing_ok=True)

    def _make_region(self, upload_id: str, user, started: float) -> None:
        from dipsim.server.regions import Assembled, LoadedRegion

        folder = self.folder(upload_id)
        record = self.record(upload_id)
        self.index.update(upload_id, status="processing")
        build = folder / "build"
        shutil.rmtree(build, ignore_errors=True)
        region_id = new_id("region")
        target = self.data.root / "regions" / region_id
        files = {slot: [f for f in record["files"] if f["slot"] == slot] for slot in SLOTS}
        names = self._names(folder, record, [build, target],
                            files["policy"][-1]["name"] if files["policy"] else None)
        made = Assembled()
        progress = folder / PROGRESS_FILE
        try:
            claims = [folder / f["stored"] for f in files["claims"]]
            if len(claims) > 1 and any(p.suffix not in PARQUET_SUFFIXES for p in claims):
                raise InputError("several claims files are read together as Parquet partitions (as `dipsim "
                                 "validate FOLDER` reads a folder): send one CSV or Excel file, or Parquet files only")
            cases_input = claims[0] if len(claims) == 1 else claims[0].parent
            policy = folder / files["policy"][-1]["stored"] if files["policy"] else None
            job = (build, cases_input, folder / files["hospitals"][-1]["stored"], policy,
                   None if policy is not None else BASELINE_NAME, ", ".join(f["name"] for f in files["claims"]),
                   progress)
            if sum(f["bytes"] for f in files["claims"]) >= self.process_bytes:
                made, error = in_child(folder, *job)
            else:
                made, error = assemble_job(*job)
            if error is not None:
                raise _Failed(*error)
            counts = self._counts(made)
            _write_progress(progress, "load", made.rows_read)
            build.rename(target)
            region = {"title": record["title"], "mode": made.mode, "cases": made.accepted,
                      "hospitals": made.hospitals, "rows_read": made.rows_read, "rejected": made.rejected,
                      "upload": upload_id, "user": user.name}
            loaded = LoadedRegion(target, region)
        except InputError as exc:
            shutil.rmtree(target, ignore_errors=True)
            shutil.rmtree(build, ignore_errors=True)
            message = _shown(str(exc), names)
            problems = [_shown(p, names) for p in getattr(exc, "problems", None) or str(exc).split("\n  ")[1:]] \
                or [message.split("\n")[0]]
            self._keep_rejects(folder, made, names)
            self._finished(upload_id, "failed", step=_read_progress(progress).get("step"), counts=self._counts(made),
                           warnings=[_shown(w, names) for w in made.warnings],
                           error={"message": message, "problems": problems},
                           elapsed_s=round(time.perf_counter() - started, 3))
            self.data.audit.write(action="upload failed", user=user.name, role=user.role, upload=upload_id,
                                  error=message.split("\n")[0])
            return
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            shutil.rmtree(build, ignore_errors=True)
            raise
        self._keep_rejects(folder, made, names)
        self.register(region_id, {**region, "created": now()}, loaded)
        self._finished(upload_id, "done", step="done", counts=counts, region=region_id,
                       warnings=[_shown(w, names) for w in made.warnings],
                       elapsed_s=round(time.perf_counter() - started, 3))
        self.data.audit.write(action="create region", user=user.name, role=user.role, upload=upload_id,
                              region=region_id, title=record["title"], counts=counts,
                              files=[{"slot": f["slot"], "name": f["name"], "sha256": f["sha256"]}
                                     for f in record["files"]],
                              inputs_sha256=loaded.inputs_sha256, policy_sha256=loaded.policy.digest())

    @staticmethod
    def _counts(made) -> dict | None:
        if made.rejects is None and not made.rows_read:
            return None
        counts = made.counts()
        if counts["read"] != counts["accepted"] + counts["rejected"]:  # the io layer's invariant: never shown broken
            raise AssertionError(f"rows read {counts['read']} != accepted {counts['accepted']} + rejected "
                                 f"{counts['rejected']}")
        return counts

    @staticmethod
    def _names(folder: Path, record: dict, regions: list[Path], policy: str | None) -> list[tuple[str, str]]:
        """(text in a message, what to show instead): each stored file's path as its original name, the region's
        policy file as the uploaded policy's name, the folders as words; the longest first."""
        from dipsim.server.regions import POLICY_FILE

        pairs = [(str(folder / f["stored"]), f["name"]) for f in record["files"]]
        pairs += [(str(folder / "files" / "claims") + "/", ""), (str(folder / "files" / "claims"), "the claims files")]
        for region in regions:
            if policy:
                pairs.append((str(region / POLICY_FILE), policy))
            pairs += [(str(region) + "/", ""), (str(region), "the region")]
        pairs.append((str(folder), "the upload"))
        return sorted(pairs, key=lambda p: -len(p[0]))

    def _keep_rejects(self, folder: Path, made, names) -> None:
        """The rejects (their files shown by original name) in rejects.parquet; none when the claims were not read."""
        from dipsim.io.writers import write_parquet

        path = folder / REJECTS_FILE
        path.unlink(missing_ok=True)
        if made.rejects is None:
            return
        table = made.rejects.select(REJECT_SCHEMA.names).cast(REJECT_SCHEMA)
        files = pc.unique(table["file"]).to_pylist()
        shown = pa.array([_shown(f, names) if f is not None else None for f in files], pa.string())
        table = table.set_column(0, "file", shown.take(pc.index_in(table["file"], pa.array(files, pa.string()))))
        write_parquet(table.sort_by([("file", "ascending"), ("row", "ascending")]), path)

    # ------------------------------------------------------------ rejects

    def rejects(self, upload_id: str) -> pa.Table:
        """The upload's rejected rows (REJECT_SCHEMA): UploadError 409 before the claims were read."""
        import pyarrow.parquet as pq

        path = self.folder(upload_id) / REJECTS_FILE
        if not path.is_file():
            raise UploadError(409, f"the upload is {self.record(upload_id)['status']}: no rejects table yet")
        return pq.read_table(path)

    def wait(self, timeout: float = 120.0) -> None:
        """Wait until no upload is queued or processing (tests)."""
        self.index.wait(("queued", "processing"), timeout, "uploads")


class _Failed(InputError):
    """An InputError of `assemble_job` (maybe in the child process), carried back as its message and problems."""

    def __init__(self, message: str, problems: list[str]):
        super().__init__(message)
        self.problems = problems


def _write_progress(path: Path, step: str | None, rows_read: int) -> None:
    from dipsim.io.writers import write_json

    write_json({"step": step, "rows_read": rows_read}, path)


def _read_progress(path: Path) -> dict:
    import json

    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def assemble_job(build: Path, cases_input: Path, hospitals: Path, policy: Path | None, policy_name: str | None,
                 source: str, progress: Path):
    """`regions.assemble_region` of an upload (`policy`: its policy TOML file, parsed as data only), in the worker
    thread or a child process: (Assembled, None), or (Assembled so far, (message, problems)) when the input cannot
    make a region. Its step and rows read go to the `progress` file, which GET /api/uploads/{id} reads."""
    from dipsim.io.toml_files import read_toml
    from dipsim.server.regions import Assembled, assemble_region

    made = Assembled()
    state: dict[str, str | None] = {"step": None}

    def step(name: str) -> None:
        state["step"] = name
        _write_progress(progress, name, made.rows_read)

    def rows(n: int) -> None:
        _write_progress(progress, state["step"], n)

    try:
        assemble_region(build, cases_input, hospitals, policy=read_toml(policy, "policy") if policy else None,
                        policy_name=policy_name, step=step, rows_progress=rows, result=made, source=source)
    except InputError as exc:
        return made, (str(exc), list(getattr(exc, "problems", None) or str(exc).split("\n  ")[1:]))
    return made, None


def _shown(text: str, names: list[tuple[str, str]]) -> str:
    for stored, original in names:
        text = text.replace(stored, original)
    return text


def rejects_xlsx(table: pa.Table, lang: str = "zh") -> bytes:
    """The rejects as Excel (report.export: text cells are text, never formulas). ValueError over a sheet's rows."""
    from dipsim.server.downloads import export_bytes

    return export_bytes(table, "xlsx", "rejects", lang, REJECT_COLUMNS)


def rejects_csv(table: pa.Table, lang: str = "zh") -> bytes:
    """The rejects as CSV (UTF-8 with a BOM; formula-like text cells prefixed with ')."""
    from dipsim.server.downloads import export_bytes

    return export_bytes(table, "csv", "rejects", lang, REJECT_COLUMNS)


JOB_FILE, JOB_RESULT, JOB_REJECTS = "job.json", "job-result.json", "job-rejects.parquet"


def in_child(folder: Path, build: Path, cases_input: Path, hospitals: Path, policy: Path | None,
             policy_name: str | None, source: str, progress: Path):
    """`assemble_job` in a child process (`python -m dipsim.server.uploads FOLDER`: a new interpreter, never a fork
    of the threaded server, importing nothing of the caller's main module), its memory given back when it ends.
    The job and its result go through files of the upload's folder: JSON, and the rejects as Parquet."""
    import json
    import os
    import subprocess
    import sys

    import pyarrow.parquet as pq

    from dipsim.io.writers import write_json
    from dipsim.server.regions import Assembled

    for name in (JOB_RESULT, JOB_REJECTS):
        (folder / name).unlink(missing_ok=True)
    write_json({"build": str(build), "cases": str(cases_input), "hospitals": str(hospitals),
                "policy": str(policy) if policy else None,
                "policy_name": policy_name, "source": source, "progress": str(progress)}, folder / JOB_FILE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}  # the same dipsim as this one
    done = subprocess.run([sys.executable, "-m", "dipsim.server.uploads", str(folder)], env=env,
                          capture_output=True, text=True, errors="replace")
    if done.returncode != 0 or not (folder / JOB_RESULT).is_file():
        log.error("upload child in %s ended with %s: %s", folder, done.returncode, done.stderr[-4000:])
        raise RuntimeError(f"the upload's child process ended with code {done.returncode}")
    result = json.loads((folder / JOB_RESULT).read_text(encoding="utf-8"))
    made = Assembled(**result["made"])
    if (folder / JOB_REJECTS).is_file():
        made.rejects = pq.read_table(folder / JOB_REJECTS)
    for name in (JOB_FILE, JOB_RESULT, JOB_REJECTS):
        (folder / name).unlink(missing_ok=True)
    return made, tuple(result["error"]) if result["error"] else None


def _warm(build: Path, progress: Path, rows_read: int) -> None:
    """In the child: load the region as the server will (`regions.LoadedRegion`), so its grouping lands in the
    grouping cache and its baseline settlement in build/baseline/; the server's own load then only reads them
    (at 1M cases grouping in the server held the GIL and stalled every request for ~3 s). A failure here is the
    server's to report when it loads the region itself."""
    from dipsim.server.regions import LoadedRegion

    _write_progress(progress, "load", rows_read)
    try:
        LoadedRegion(build, {})
    except Exception:  # the server's load says what is wrong
        log.warning("warming the region in %s failed; the server loads it itself", build, exc_info=True)


def _child_main(folder: Path) -> int:
    """The child of `in_child`: the job of FOLDER/job.json, its result written beside it."""
    import dataclasses
    import json

    from dipsim.io.writers import write_json, write_parquet

    job = json.loads((folder / JOB_FILE).read_text(encoding="utf-8"))
    made, error = assemble_job(Path(job["build"]), Path(job["cases"]), Path(job["hospitals"]),
                               Path(job["policy"]) if job["policy"] else None, job["policy_name"], job["source"],
                               Path(job["progress"]))
    if error is None:
        _warm(Path(job["build"]), Path(job["progress"]), made.rows_read)
    if made.rejects is not None:
        write_parquet(made.rejects, folder / JOB_REJECTS)
    fields = {f.name: getattr(made, f.name) for f in dataclasses.fields(made) if f.name != "rejects"}
    write_json({"made": fields, "error": list(error) if error else None}, folder / JOB_RESULT)
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(_child_main(Path(sys.argv[1])))
