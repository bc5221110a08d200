"""Accounts, tokens and login rate limiting of `dipsim serve`.

* Roles: `bureau` (医保局: every region, hospital, case and run, the audit log) and `hospital` (one hospital_id: its
  own hospital's cases, payouts and explanations, plus what the bureau publishes: the pools' point values).
* Passwords are kept as argon2id hashes (argon2-cffi's defaults) in DATA/users.json, never in clear.
* Login gives a bearer token (random, 256 bits) with an expiry; the server keeps only its sha256, in memory, and
  forgets it at logout (or restart: log in again). No cookies, so no CSRF token is needed in this API.
* Login rate limit: `LOGIN_FAILURES` failed logins within `LOGIN_WINDOW_S` seconds for one user name, or from one
  client address, and further logins for it are refused (HTTP 429) until the window has passed.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from dipsim.io.errors import InputError
from dipsim.io.writers import write_json

ROLES = ("bureau", "hospital")
USER_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
HOSPITAL_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MIN_PASSWORD = 8
TOKEN_TTL_S = 8 * 3600  # a working day
LOGIN_FAILURES, LOGIN_WINDOW_S = 5, 60.0


@dataclass(frozen=True)
class User:
    name: str
    role: str
    hospital_id: str | None = None

    @property
    def is_bureau(self) -> bool:
        return self.role == "bureau"

    def public(self) -> dict:
        return asdict(self)


# password checks at once: argon2 (argon2-cffi's defaults) takes 64 MiB for each, so 20 clients logging in together
# took the server from 0.4 to 1.4 GiB; more wait their turn (a check costs tens of ms)
VERIFY_AT_ONCE = 4


def _hasher():
    from argon2 import PasswordHasher

    return PasswordHasher()


class Accounts:
    """DATA/users.json: name -> role, hospital_id, argon2 hash."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._hasher = _hasher()
        self._verifying = threading.BoundedSemaphore(VERIFY_AT_ONCE)
        self._dummy = self._hasher.hash(secrets.token_hex(16))  # an unknown name costs a verify too (no timing tell)

    def _read(self) -> dict:
        import json

        return json.loads(self.path.read_text(encoding="utf-8")) if self.path.is_file() else {}

    def names(self) -> list[str]:
        return sorted(self._read())

    def get(self, name: str) -> User | None:
        record = self._read().get(name)
        return User(name, record["role"], record.get("hospital_id")) if record else None

    def add(self, name: str, password: str, role: str, hospital_id: str | None = None, replace: bool = False) -> User:
        """Add (or with `replace`, reset) an account; InputError naming what is wrong."""
        problems = []
        if not USER_NAME.match(name or ""):
            problems.append(f"user name {name!r}: 1-64 letters, digits or _ . @ -")
        if role not in ROLES:
            problems.append(f"role {role!r}: one of {', '.join(ROLES)}")
        if role == "hospital" and not HOSPITAL_ID.match(hospital_id or ""):
            problems.append("a hospital account needs --hospital ID (the hospital_id of the hospitals table)")
        if role == "bureau" and hospital_id:
            problems.append("a bureau account has no --hospital")
        if len(password or "") < MIN_PASSWORD:
            problems.append(f"the password must have at least {MIN_PASSWORD} characters")
        if problems:
            raise InputError("; ".join(problems))
        with self._lock:
            users = self._read()
            if name in users and not replace:
                raise InputError(f"user {name!r} exists already")
            users[name] = {"role": role, "hospital_id": hospital_id if role == "hospital" else None,
                           "hash": self._hasher.hash(password)}
            write_json(users, self.path)
        return User(name, role, users[name]["hospital_id"])

    def remove(self, name: str) -> bool:
        with self._lock:
            users = self._read()
            if users.pop(name, None) is None:
                return False
            write_json(users, self.path)
            return True

    def verify(self, name: str, password: str) -> User | None:
        """The user when `password` is theirs, else None (the same work either way)."""
        from argon2.exceptions import InvalidHashError, VerificationError

        record = self._read().get(name) if isinstance(name, str) else None
        try:
            with self._verifying:
                self._hasher.verify(record["hash"] if record else self._dummy, password)
        except (VerificationError, InvalidHashError):
            return None
        return User(name, record["role"], record.get("hospital_id")) if record else None


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


class Sessions:
    """Bearer tokens: only their sha256 is kept, with the user and the expiry; `clock` gives seconds."""

    def __init__(self, ttl_s: float = TOKEN_TTL_S, clock: Callable[[], float] = time.time):
        self.ttl_s, self.clock = ttl_s, clock
        self._lock = threading.Lock()
        self._tokens: dict[str, tuple[User, float]] = {}

    def issue(self, user: User) -> tuple[str, float]:
        token = secrets.token_urlsafe(32)
        expires = self.clock() + self.ttl_s
        with self._lock:
            now = self.clock()
            self._tokens = {k: v for k, v in self._tokens.items() if v[1] > now}  # drop the expired ones
            self._tokens[token_digest(token)] = (user, expires)
        return token, expires

    def user(self, token: str) -> User | None:
        with self._lock:
            found = self._tokens.get(token_digest(token))
            if found is None:
                return None
            if found[1] <= self.clock():
                del self._tokens[token_digest(token)]
                return None
            return found[0]

    def revoke(self, token: str) -> None:
        with self._lock:
            self._tokens.pop(token_digest(token), None)

    def revoke_user(self, name: str) -> None:
        with self._lock:
            self._tokens = {k: v for k, v in self._tokens.items() if v[0].name != name}


class LoginLimiter:
    """Failed logins per key (("user", name), ("address", host)) in a sliding window."""

    def __init__(self, failures: int = LOGIN_FAILURES, window_s: float = LOGIN_WINDOW_S,
                 clock: Callable[[], float] = time.time):
        self.failures, self.window_s, self.clock = failures, window_s, clock
        self._lock = threading.Lock()
        self._seen: dict[tuple, deque] = {}

    def _recent(self, key: tuple) -> deque:
        times = self._seen.setdefault(key, deque())
        while times and times[0] <= self.clock() - self.window_s:
            times.popleft()
        return times

    def retry_after(self, keys: list[tuple]) -> int:
        """Seconds until a login for every key is allowed again (0: allowed now)."""
        with self._lock:
            waits = [self._recent(k)[0] + self.window_s - self.clock() for k in keys
                     if len(self._recent(k)) >= self.failures]
        return max(1, int(max(waits) + 0.999)) if waits else 0

    def failed(self, keys: list[tuple]) -> None:
        with self._lock:
            for k in keys:
                self._recent(k).append(self.clock())
            if len(self._seen) > 10_000:  # made-up names cannot grow memory: keys with no recent failure go
                self._seen = {k: v for k, v in self._seen.items() if self._recent(k)}
