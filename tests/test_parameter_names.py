"""Every policy parameter is read by its literal name, so grepping a parameter's path finds the code that reads it.

The registry (dipsim/data/policy_parameters.toml, loaded as `dipsim.policy.PARAMETERS`) lists each parameter once.
These tests read the package's source with `ast`, not by importing it, and hold that (a) each registry path appears
as a whole string literal in the code that uses it, (b) each string literal shaped like a parameter path names a
parameter of the registry, and (c) no parameter name is built at run time (`policy.get(f"outlier.{name}_ratio")`),
which grep cannot find.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import dipsim
from dipsim.policy import PARAMETERS

PACKAGE = Path(dipsim.__file__).resolve().parent
# The registry's own file and its loader (which checks values and the rules between parameters, but prices nothing)
# do not count as reading a parameter: a path they name must also be read by the code that uses it.
REGISTRY_PLACES = (PACKAGE / "data", PACKAGE / "policy.py")
SECTIONS = {path.split(".")[0] for path in PARAMETERS}
PATH_SHAPE = re.compile(r"^[a-z_]+\.[a-z_0-9]+$")

# String literals shaped like a parameter path, in a registry section, that are not parameters; each says why.
NOT_PARAMETERS = {
    "review.csv",  # the special-case review outcomes `dipsim settle` writes (dipsim/cli.py)
    "bands.csv",  # the Monte Carlo bands `dipsim project --draws` writes (dipsim/cli.py)
}


def _sources() -> dict[Path, ast.Module]:
    return {path: ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for path in sorted(PACKAGE.rglob("*.py"))}


def _path_literals(tree: ast.Module) -> set[str]:
    """String constants of `tree` that look like a parameter path in a registry section (f-string parts excluded:
    they are pieces of text, never a whole name)."""
    pieces = {id(part) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for part in node.values}
    return {node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in pieces
            and PATH_SHAPE.match(node.value) and node.value.split(".")[0] in SECTIONS}


def _outside_registry(path: Path) -> bool:
    return not any(path == place or place in path.parents for place in REGISTRY_PLACES)


def test_the_sources_are_found():
    sources = _sources()
    assert PACKAGE / "pricing.py" in sources and PACKAGE / "policy.py" in sources
    assert len(PARAMETERS) > 50 and {"outlier", "supervision", "budget"} <= SECTIONS


def test_every_parameter_of_the_registry_is_read_by_its_literal_name():
    read = set().union(*(_path_literals(tree) for path, tree in _sources().items() if _outside_registry(path)))
    never = sorted(set(PARAMETERS) - read)
    assert not never, f"{len(never)} parameter(s) never named literally outside the registry: {never}"


def test_every_literal_shaped_like_a_parameter_path_is_in_the_registry():
    unknown = {f"{path.relative_to(PACKAGE)}: {name}" for path, tree in _sources().items()
               for name in _path_literals(tree) - set(PARAMETERS) - NOT_PARAMETERS}
    assert not unknown, f"not in dipsim/data/policy_parameters.toml: {sorted(unknown)}"


def test_the_known_non_parameters_are_still_used():
    """An entry of NOT_PARAMETERS that no code uses any more is dropped from the list, so it hides nothing."""
    used = set().union(*(_path_literals(tree) for tree in _sources().values()))
    assert used >= NOT_PARAMETERS, sorted(NOT_PARAMETERS - used)


def test_no_parameter_name_is_built_at_run_time():
    """No f-string, `+` or `%` starts with a section, a dot and a name cut short (`f"outlier.{name}_ratio"`,
    `"bands." + key`); a message that starts with a whole path (`f"budget.total has no budget for {pool}"`) is
    text, not a name."""
    cut_short = re.compile(rf"^({'|'.join(sorted(SECTIONS))})\.[a-z_0-9]*$")
    built = []
    for path, tree in _sources().items():
        for node in ast.walk(tree):
            head = None
            if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
                head = node.values[0].value
            elif isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mod)) \
                    and isinstance(node.left, ast.Constant):
                head = node.left.value
            if isinstance(head, str) and cut_short.match(head):
                built.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: {ast.unparse(node)}")
    assert not built, "parameter names built at run time:\n" + "\n".join(built)


def test_the_screens_cache_key_lists_every_parameter_the_screens_read():
    """`screens_for` runs the screens once per value of SCREEN_PARAMETERS: that tuple is what
    `screen_cases` reads, and with CONSEQUENCES it is the whole supervision section (a new screen parameter left
    out of the key would reuse screens run under its old value)."""
    from dipsim.supervise import CONSEQUENCES, SCREEN_PARAMETERS

    tree = _sources()[PACKAGE / "supervise.py"]
    screen_cases = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "screen_cases")
    read = _path_literals(ast.Module(body=[screen_cases], type_ignores=[]))
    assert read == set(SCREEN_PARAMETERS)
    assert set(SCREEN_PARAMETERS) | set(CONSEQUENCES) == {p for p in PARAMETERS if p.split(".")[0] == "supervision"}
