"""Policy parameters (政策参数): TOML files checked against one table of every parameter (docs/domain.md §7-12).

`dipsim/data/policy_parameters.toml` lists each parameter once: type, default, unit, source and meaning. A policy
file sets some of them, as nested TOML tables or dotted keys (`[outlier] high_ratio = 2.0`); a value may be dated,
`{ "2025-01-01" = 1.0, "2025-07-01" = 1.1 }`, and `Policy.get(path, on=day)` gives the one in force. Loading checks
everything and reports every problem at once (file, key, why): an unknown key (a typo), a wrong type, a value that
is not a finite number (nan, inf), a value out of range, and the rules between parameters (`RULES`: a point-value
floor above its cap, a low-outlier ratio not below the high one, ...), on every date where one of a rule's
parameters changes. A scenario overlay `{path: value}` is checked completely, with the rules on the policy it would
make, before anything is applied, so a policy is never half changed (PolicyEngine's Reform.from_dict); the result
is a new Policy, the baseline stays as it was.
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import json
import math
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TypeGuard

from dipsim.io.errors import InputError
from dipsim.io.toml_files import read_toml

REGISTRY_FILE = Path(__file__).resolve().parent / "data" / "policy_parameters.toml"


class PolicyError(InputError):
    """Every problem of a policy file or overlay, one per line."""

    SHOWN = 50  # a sweep may break a rule in thousands of variants: the message lists this many

    def __init__(self, source: str, problems: list[str]):
        self.problems = problems
        more = len(problems) - self.SHOWN
        super().__init__(f"{source}: {len(problems)} problem(s) in the policy:\n  " + "\n  ".join(
            problems[:self.SHOWN] + ([f"... and {more} more"] if more > 0 else [])))


@dataclass(frozen=True)
class Parameter:
    path: str
    type: str
    default: object
    doc: str = ""
    label: str = ""  # a short Chinese name (中医医院加成), for people: forms, variant names, reports
    label_en: str = ""  # the same in English (TCM hospital bonus): the workbench in English
    doc_zh: str = ""  # the meaning (`doc`) in Chinese, in the bureaus' terms (点值, 分值, 偏差病例, 特例单议, ...)
    unit: str = ""
    source: str = ""
    min: float | None = None  # inclusive bounds
    max: float | None = None
    above: float | None = None  # exclusive bounds: a budget above 0, a reserve share below 1
    below: float | None = None
    choices: tuple = ()


def registry() -> dict[str, Parameter]:
    data = tomllib.loads(REGISTRY_FILE.read_text(encoding="utf-8"))
    return {path: Parameter(path=path, type=spec["type"], default=spec["default"], doc=spec.get("doc", ""),
                            label=spec.get("label", ""), label_en=spec.get("label_en", ""),
                            doc_zh=spec.get("doc_zh", ""), unit=spec.get("unit", ""), source=spec.get("source", ""),
                            min=spec.get("min"), max=spec.get("max"), above=spec.get("above"), below=spec.get("below"),
                            choices=tuple(spec.get("choices", ())))
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


def _is_dated(value: object) -> TypeGuard[dict[str, object]]:
    """A table whose keys are all ISO dates holds dated values (no parameter's own keys are dates)."""
    if not isinstance(value, dict) or not value:
        return False
    try:
        for key in value:
            dt.date.fromisoformat(str(key))
    except ValueError:
        return False
    return True


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _bounds(parameter: Parameter, value: float) -> str | None:
    """Why a number is outside the parameter's bounds (None when inside)."""
    unit = f" {parameter.unit}" if parameter.unit else ""
    if parameter.min is not None and value < parameter.min:
        return f"{value} is below the minimum {parameter.min}{unit}"
    if parameter.above is not None and value <= parameter.above:
        return f"{value} must be above {parameter.above}{unit}"
    if parameter.max is not None and value > parameter.max:
        return f"{value} is above the maximum {parameter.max}{unit}"
    if parameter.below is not None and value >= parameter.below:
        return f"{value} must be below {parameter.below}{unit}"
    return None


def _check(parameter: Parameter, value) -> str | None:
    """Why `value` is not valid for `parameter` (None when it is). A number must be finite: TOML's nan and inf
    pass every comparison with a bound, and no parameter means them."""
    t = parameter.type
    if t == "float":
        if not _is_number(value):
            return f"expected a number, not {value!r}"
        if not math.isfinite(value):
            return f"{value} is not a finite number"
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
        bad = [k for k, v in value.items() if not _is_number(v)]
        if bad:
            return f"entries {bad} are not numbers"
        out = {k: f"{v} is not a finite number" if not math.isfinite(v) else _bounds(parameter, v)
               for k, v in value.items()}
        out = {k: why for k, why in out.items() if why}
        return "; ".join(f"entry {k!r}: {why}" for k, why in out.items()) or None
    elif t == "schedule":
        if not isinstance(value, list) or not all(isinstance(p, list) and len(p) == 2 for p in value):
            return f"expected a list of [threshold, value] pairs, not {value!r}"
        if not all(_is_number(x) and math.isfinite(x) for pair in value for x in pair):
            return f"every threshold and value must be a finite number, not {value!r}"
        return None
    if parameter.choices and value not in parameter.choices:
        return f"{value!r} is not one of {list(parameter.choices)}"
    if _is_number(value):
        return _bounds(parameter, value)
    return None


def _problems(values: dict[str, object]) -> dict[str, list[str]]:
    """Every parameter's own problems (unknown, wrong type, not finite, out of range), by parameter."""
    problems = {}
    for path, value in values.items():
        parameter = PARAMETERS.get(path)
        if parameter is None:
            close = difflib.get_close_matches(path, PARAMETERS, n=1)
            problems[path] = [f"{path}: unknown parameter" + (f" (did you mean {close[0]}?)" if close else "")]
            continue
        for when, v in (value.items() if _is_dated(value) else [(None, value)]):
            why = _check(parameter, v)
            if why:
                problems.setdefault(path, []).append(f"{path}{f' (from {when})' if when else ''}: {why}")
    return problems


# ---------------------------------------------------------------- rules between parameters


@dataclass(frozen=True)
class Rule:
    """Values of several parameters that no policy can mean together: `name` states the rule, `doc` why it holds;
    `broken` gets the parameters' values (in `paths` order) and says what breaks it (nothing when it holds)."""

    name: str
    paths: tuple[str, ...]
    doc: str
    broken: Callable[..., list[str]]


def _by_level(plain: float, by_level: dict, other_plain: float, other_by_level: dict):
    """(where, value, other value) for the policy as a whole and at each level either by-level table lists (a
    level a table does not list uses its plain value)."""
    yield "", plain, other_plain
    for level in sorted({*by_level, *other_by_level}):
        yield f" at level {level}", by_level.get(level, plain), other_by_level.get(level, other_plain)


def _drg_scheme_problems(mode: str, scheme: str) -> list[str]:
    """A CHS-DRG scheme set in DIP mode (a DIP catalogue has none), or one without grouper tables."""
    if not scheme:
        return []
    if mode != "drg":
        return [f"{scheme!r} is set with payment.mode = {mode!r} (leave it unset, or set payment.mode = \"drg\")"]
    from dipsim.grouping.tables import scheme_folder

    try:
        scheme_folder(scheme)
    except FileNotFoundError as exc:
        return [str(exc)]
    return []


def _hospital_cap_problems(growth: float, tiers: list) -> list[str]:
    from dipsim.payment.caps import tier_problems

    return tier_problems(growth, tiers)


RULES: tuple[Rule, ...] = (
    Rule("budget.point_value_floor <= budget.point_value_cap",
         ("budget.point_value_floor", "budget.point_value_cap"),
         "a floor above the cap (0: no cap) makes every pool overrun its budget",
         lambda floor, cap: [f"{floor} > {cap}"] if 0 < cap < floor else []),
    Rule("outlier.low_ratio < outlier.high_ratio",
         ("outlier.low_ratio", "outlier.low_ratio_by_level", "outlier.high_ratio", "outlier.high_ratio_by_level"),
         "a case cannot be both a low and a high outlier (checked at each level of the *_by_level tables too)",
         lambda low, lows, high, highs: [f"{lo} >= {hi}{where}"
                                         for where, lo, hi in _by_level(low, lows, high, highs) if not lo < hi]),
    Rule("outlier.high_ratio <= outlier.extreme_ratio",
         ("outlier.high_ratio", "outlier.high_ratio_by_level", "outlier.extreme_ratio"),
         "an extreme case (特例单议) is a high outlier (checked at each level of high_ratio_by_level too)",
         lambda high, highs, extreme: [f"{hi} > {extreme}{where}"
                                       for where, hi, _ in _by_level(high, highs, extreme, {}) if hi > extreme]),
    Rule("monitor.warning_excess <= monitor.alert_excess",
         ("monitor.warning_excess", "monitor.alert_excess"),
         "the alert line (警报) is beyond the warning line (预警)",
         lambda warning, alert: [f"{warning} > {alert}"] if warning > alert else []),
    Rule("payment.drg_scheme: a CHS-DRG scheme, in DRG mode",
         ("payment.mode", "payment.drg_scheme"),
         "the cases are grouped under grouper_tables/<payment.drg_scheme>; DIP mode groups to a catalogue",
         _drg_scheme_problems),
    Rule("budget.hospital_cap_tiers: from 0, ascending, weights in [0, 1] not increasing",
         ("budget.hospital_cap_growth", "budget.hospital_cap_tiers"),
         "a point's weight by where it lies against its hospital's cap (step 8 of the chain, docs/domain.md §12)",
         _hospital_cap_problems),
)

_NOT_IN_FORCE = object()


def _in_force(value, day: dt.date | None):
    """A parameter's value on `day` (the latest when None); _NOT_IN_FORCE before its first date."""
    if not _is_dated(value):
        return value
    day = day or dt.date.max
    in_force = [d for d in sorted(value, key=dt.date.fromisoformat) if dt.date.fromisoformat(d) <= day]
    return value[in_force[-1]] if in_force else _NOT_IN_FORCE


def _change_days(values: Mapping[str, object], paths) -> list[dt.date]:
    """The days on which one of `paths` takes a new value in `values` (defaults filled in): the keys of its dated
    values, sorted."""
    raw = (values.get(path, PARAMETERS[path].default) for path in paths)
    return sorted({dt.date.fromisoformat(d) for v in raw if _is_dated(v) for d in v})


def _rule_problems(values: Mapping[str, object], skip=frozenset()) -> list[str]:
    """The rules broken by `values` (defaults filled in), on every date where one of a rule's parameters changes.
    A rule on a parameter in `skip` (one with problems of its own) is not checked."""
    problems = []
    for rule in RULES:
        if set(rule.paths) & set(skip):
            continue
        raw = [values.get(path, PARAMETERS[path].default) for path in rule.paths]
        days: list[dt.date | None] = [*_change_days(values, rule.paths)]
        for day in days or [None]:
            resolved = [_in_force(v, day) for v in raw]
            if any(v is _NOT_IN_FORCE for v in resolved):
                continue
            problems += [f"{rule.name}{f' (from {day})' if day else ''}: {what}; {rule.doc}"
                         for what in rule.broken(*resolved)]
    return problems


def _all_problems(values: Mapping[str, object], checked: dict[str, object]) -> list[str]:
    """The problems of the parameters in `checked`, then the rules on the whole of `values`."""
    own = _problems(checked)
    return [line for lines in own.values() for line in lines] + _rule_problems(values, skip=own)


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
        day = dt.date.fromisoformat(str(on)) if on is not None else None
        resolved = _in_force(value, day)
        if resolved is _NOT_IN_FORCE:
            raise KeyError(f"{path}: no value in force on {day} (earliest {min(value)})")
        return resolved

    def change_days(self, paths) -> list[dt.date]:
        """The days on which one of `paths` takes a new value (the keys of its dated values), sorted."""
        return _change_days(self.values, paths)

    def overlay(self, changes: dict[str, object], name: str = "") -> Policy:
        """A new policy with `changes` ({path: value}) applied, all of them and the rules on the result checked
        first."""
        values = {**self.values, **changes}
        problems = _all_problems(values, dict(changes))
        if problems:
            raise PolicyError(name or "overlay", problems)
        return Policy(values=MappingProxyType(values), source=self.source,
                      name=name or self.name, overlays=(*self.overlays, dict(changes)))

    def digest(self) -> str:
        """sha256 of the values in force (for manifests: the same policy gives the same hash)."""
        resolved = {p: self.values.get(p, PARAMETERS[p].default) for p in sorted(PARAMETERS)}
        text = json.dumps(resolved, sort_keys=True, ensure_ascii=False, default=str)
        return hashlib.sha256(text.encode()).hexdigest()


def load_policy(path) -> Policy:
    """Read and check a policy TOML file (every problem reported at once, as PolicyError, exit code 1)."""
    path = Path(path)
    data = read_toml(path, "policy")
    meta = data.pop("meta", {})
    values = _flatten(data)
    problems = _all_problems(values, values)
    if problems:
        raise PolicyError(str(path), problems)
    return Policy(values=MappingProxyType(values), source=str(path), name=meta.get("name", path.stem))
