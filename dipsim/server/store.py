"""The server's data folder (`dipsim serve --data DIR`): regions, runs, users and the audit log, kept across
restarts.

    DIR/users.json                 accounts (argon2 hashes only)
    DIR/audit.jsonl                one JSON object per line: who did what, when
    DIR/regions/index.json         region id -> title, mode, created
    DIR/regions/<id>/...           a region's files (`regions`)
    DIR/runs/index.json            run id -> region, name, status, user, created
    DIR/runs/<id>/result.json      a done run's results, whole fen (`runs`)
    DIR/uploads/index.json         upload id -> title, status, files (original names as data), counts
    DIR/uploads/<id>/files/        the uploaded files, under generated names (`uploads`)
    DIR/projections/index.json     projection id -> region, name, years, draws, status, user, created
    DIR/projections/<id>/          a projection's file as run and its tables (`projections`)

No path is made from user input: region and run ids are generated here (`new_id`), checked against their pattern
(`REGION_ID`, `RUN_ID`) and looked up in an index before a folder of that name is opened; everything else a
request names (a hospital, a case) is looked up in tables, never joined to a path.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import threading
import time
from pathlib import Path

from dipsim.io.writers import write_json

REGION_ID = re.compile(r"^r[0-9a-f]{12}$")
RUN_ID = re.compile(r"^x[0-9a-f]{16}$")
UPLOAD_ID = re.compile(r"^u[0-9a-f]{16}$")
PROJECTION_ID = re.compile(r"^p[0-9a-f]{16}$")
REGION_PATTERN, RUN_PATTERN, UPLOAD_PATTERN = REGION_ID.pattern, RUN_ID.pattern, UPLOAD_ID.pattern
PROJECTION_PATTERN = PROJECTION_ID.pattern


def now() -> str:
    """The current time, UTC, ISO 8601 to the second."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def new_id(kind: str) -> str:
    """A fresh random id: r + 12 hex digits for a region, x + 16 for a run, u + 16 for an upload, f + 16 for an
    uploaded file's name, p + 16 for a projection."""
    if kind == "region":
        return "r" + secrets.token_hex(6)
    return {"run": "x", "upload": "u", "file": "f", "projection": "p"}[kind] + secrets.token_hex(8)


class Index:
    """A JSON object on disk, id -> record, rewritten atomically on every change (one lock per index)."""

    def __init__(self, path: Path, pattern: re.Pattern):
        self.path, self.pattern = path, pattern
        self._lock = threading.Lock()
        self._items: dict[str, dict] = {}
        if path.is_file():
            data = json.loads(path.read_text(encoding="utf-8"))
            self._items = {k: v for k, v in data.items() if pattern.match(k)}

    def get(self, key: str) -> dict | None:
        """The record of `key`, None when `key` is not a well-formed id or not in the index."""
        if not isinstance(key, str) or not self.pattern.match(key):
            return None
        with self._lock:
            item = self._items.get(key)
            return dict(item) if item is not None else None

    def folder(self, key: str) -> Path | None:
        """The folder of a known id (`get` first: nothing unknown is joined to a path)."""
        return self.path.parent / key if self.get(key) is not None else None

    def put(self, key: str, record: dict) -> None:
        if not self.pattern.match(key):
            raise ValueError(f"bad id {key!r}")
        with self._lock:
            self._items[key] = dict(record)
            write_json(self._items, self.path)

    def update(self, key: str, **changes) -> dict:
        with self._lock:
            self._items[key] = {**self._items[key], **changes}
            write_json(self._items, self.path)
            return dict(self._items[key])

    def items(self) -> list[tuple[str, dict]]:
        with self._lock:
            return [(k, dict(v)) for k, v in self._items.items()]

    def wait(self, busy: tuple[str, ...], timeout: float, what: str) -> None:
        """Wait until no record's status is one of `busy` (tests): TimeoutError naming `what` after `timeout` s."""
        deadline = time.monotonic() + timeout
        while any(r.get("status") in busy for _, r in self.items()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} still going")
            time.sleep(0.05)


class AuditLog:
    """DIR/audit.jsonl: appended, one JSON object a line, never rewritten."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()

    def write(self, **entry) -> dict:
        entry = {"time": now(), **entry}
        line = json.dumps(entry, ensure_ascii=False, sort_keys=True, default=str)
        with self._lock, open(self.path, "a", encoding="utf-8") as out:
            out.write(line + "\n")
        return entry

    def read(self, limit: int = 1000) -> list[dict]:
        """The last `limit` entries, newest last."""
        if not self.path.is_file():
            return []
        with self._lock:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines[-limit:] if line.strip()]


class DataFolder:
    """The folders and indexes of DIR, made when absent."""

    def __init__(self, root):
        self.root = Path(root)
        (self.root / "regions").mkdir(parents=True, exist_ok=True)
        (self.root / "runs").mkdir(parents=True, exist_ok=True)
        (self.root / "uploads").mkdir(parents=True, exist_ok=True)
        (self.root / "projections").mkdir(parents=True, exist_ok=True)
        self.regions = Index(self.root / "regions" / "index.json", REGION_ID)
        self.runs = Index(self.root / "runs" / "index.json", RUN_ID)
        self.uploads = Index(self.root / "uploads" / "index.json", UPLOAD_ID)
        self.projections = Index(self.root / "projections" / "index.json", PROJECTION_ID)
        self.audit = AuditLog(self.root / "audit.jsonl")
        self.users_path = self.root / "users.json"
