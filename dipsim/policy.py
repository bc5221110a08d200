"""Policy parameters (政策参数): TOML files checked against one table of every parameter (DOMAIN.md §7-9).

`dipsim/data/policy_parameters.toml` lists each parameter once: type, default, unit, source and meaning. A policy
file sets some of them, as nested TOML tables or dotted keys (`[outlier] high_ratio = 2.0`); a value may be dated,
`{ "2025-01-01" = 1.0, "2025-07-01" = 1.1 }`, and `Policy.get(path, on=day)` gives the one in force. Loading checks
everything and reports every problem at once (file, key, why): an unknown key (a typo), a wrong type, a value out of
range. A scenario overlay `{path: value}` is checked completely before anything is applied, so a policy is never
half changed (PolicyEngine's Reform.from_dict); the result is a new Policy, the baseline stays as it was.
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from dipsim.io.errors import InputError

REGISTRY_FILE = Path(__file__).resolve().parent / "data" / "policy_parameters.toml"


class PolicyError(InputError):
    """Every problem of a policy file or overlay, one per line."""

    def __init__(self, source: str, problems: list[str]):
        self.problems = problems
        super().__init__(f"{source}: {len(problems)} problem(s) in the policy:\n  " + "\n  ".join(problems))


@dataclass(frozen=True)
class Parameter:
    path: str
    type: str
    default: object
    doc: str = ""
    unit: str = ""
    source: str = ""
    min: float | None = None
    max: float | None = None
    choices: tuple = ()


def registry() -> dict[str, Parameter]:
    data = tomllib.loads(REGISTRY_FILE.read_text(encoding="utf-8"))
    return {path: Parameter(path=path, type=spec["type"], default=spec["default"], doc=spec.get("doc", ""),
                            unit=spec.get("unit", ""), source=spec.get("source", ""), min=spec.get("min"),
                            max=spec.get("max"), choices=tuple(spec.get("choices", ())))
            for path, spec in data.items()}


PARAMETERS = registry()


def _flatten(table: dict, prefix: str = "") -> dict[str, object]:
    """Nested TOML tables to dotted paths, stopping at a known parameter (its value may itself be a table)."""
    out = {}
    for key, value in table.items():
        path = f"{prefix}{key}"
        if path in PARAMETERS or not isinstance(value, dict):
            out[path] = value
        else:
            out.update(_flatten(value, path + "."))
    return out


def _is_dated(value) -> bool:
    """A table whose keys are all ISO dates holds dated values (no parameter's own keys are dates)."""
    if not isinstance(value, dict) or not value:
        return False
    try:
        for key in value:
            dt.date.fromisoformat(str(key))
    except ValueError:
        return False
    return True


def _check(parameter: Parameter, value) -> str | None:
    """Why `value` is not valid for `parameter` (None when it is)."""
    t = parameter.type
    if t == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"expected a number, not {value!r}"
    elif t == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            return f"expected a whole number, not {value!r}"
    elif t == "bool":
        if not isinstance(value, bool):
            return f"expected true or false, not {value!r}"
    elif t == "str":
        if not isinstance(value, str):
            return f"expected text, not {value!r}"
    elif t == "map":
        if not isinstance(value, dict):
            return f"expected a table of name = number, not {value!r}"
        bad = [k for k, v in value.items() if isinstance(v, bool) or not isinstance(v, (int, float))]
        if bad:
            return f"entries {bad} are not numbers"
        if parameter.min is not None and any(v < parameter.min for v in value.values()):
            return f"entries must be >= {parameter.min}"
        return None
    elif t == "schedule":
        if not isinstance(value, list) or not all(isinstance(p, list) and len(p) == 2 for p in value):
            return f"expected a list of [threshold, value] pairs, not {value!r}"
        return None
    if parameter.choices and value not in parameter.choices:
        return f"{value!r} is not one of {list(parameter.choices)}"
    if parameter.min is not None and isinstance(value, (int, float)) and value < parameter.min:
        return f"{value} is below the minimum {parameter.min} {parameter.unit}".rstrip()
    if parameter.max is not None and isinstance(value, (int, float)) and value > parameter.max:
        return f"{value} is above the maximum {parameter.max} {parameter.unit}".rstrip()
    return None


def _problems(values: dict[str, object]) -> list[str]:
    problems = []
    for path, value in values.items():
        parameter = PARAMETERS.get(path)
        if parameter is None:
            close = difflib.get_close_matches(path, PARAMETERS, n=1)
            problems.append(f"{path}: unknown parameter" + (f" (did you mean {close[0]}?)" if close else ""))
            continue
        for when, v in (value.items() if _is_dated(value) else [(None, value)]):
            why = _check(parameter, v)
            if why:
                problems.append(f"{path}{f' (from {when})' if when else ''}: {why}")
    return problems


@dataclass(frozen=True)
class Policy:
    """Parameter values (defaults filled in), possibly dated; `get` reads one, `overlay` makes a variant."""

    values: MappingProxyType
    source: str = "defaults"
    name: str = ""
    overlays: tuple = field(default=())

    def __reduce__(self):  # a mapping proxy does not pickle; a Dask worker gets the plain values
        return (Policy, (dict(self.values), self.source, self.name, self.overlays))

    def get(self, path: str, on: dt.date | str | None = None):
        if path not in PARAMETERS:
            raise KeyError(f"unknown policy parameter {path!r}")
        value = self.values.get(path, PARAMETERS[path].default)
        if _is_dated(value):
            day = dt.date.fromisoformat(str(on)) if on is not None else dt.date.max
            in_force = [d for d in sorted(value, key=dt.date.fromisoformat) if dt.date.fromisoformat(d) <= day]
            if not in_force:
                raise KeyError(f"{path}: no value in force on {day} (earliest {min(value)})")
            value = value[in_force[-1]]
        return value

    def overlay(self, changes: dict[str, object], name: str = "") -> Policy:
        """A new policy with `changes` ({path: value}) applied, all of them checked first."""
        problems = _problems(dict(changes))
        if problems:
            raise PolicyError(name or "overlay", problems)
        return Policy(values=MappingProxyType({**self.values, **changes}), source=self.source,
                      name=name or self.name, overlays=(*self.overlays, dict(changes)))

    def digest(self) -> str:
        """sha256 of the values in force (for manifests: the same policy gives the same hash)."""
        resolved = {p: self.values.get(p, PARAMETERS[p].default) for p in sorted(PARAMETERS)}
        return hashlib.sha256(json.dumps(resolved, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


def load_policy(path) -> Policy:
    """Read and check a policy TOML file (every problem reported at once, as PolicyError, exit code 1)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"{path}: cannot read the policy: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(str(path), [f"not valid TOML: {exc}"]) from exc
    meta = data.pop("meta", {})
    values = _flatten(data)
    problems = _problems(values)
    if problems:
        raise PolicyError(str(path), problems)
    return Policy(values=MappingProxyType(values), source=str(path), name=meta.get("name", path.stem))
