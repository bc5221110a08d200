"""Reading a user's TOML file (a policy, a scenario file, an auxiliary or TCM catalogue, a header mapping, a
city's scheme dates) with one-line errors naming the file: it cannot be read, is not UTF-8 text (a binary file, a
file saved as GBK by Notepad on a Chinese Windows) or is not TOML. Every such file goes through `read_toml`."""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

from .errors import InputError


def read_toml(path: str | Path, what: str) -> dict:
    """The parsed TOML of `path`, or InputError naming the file and `what` it should have been."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot read the {what} file: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not a {what} file: byte {exc.start} ({exc.object[exc.start:exc.start + 1]!r}) is "
                         f"not UTF-8 text; a {what} file is TOML saved as UTF-8") from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not a {what} file: not valid TOML ({exc})") from exc


def is_number(value) -> bool:
    """A TOML value that is a finite number (an integer or a float, not a boolean)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
