"""Error types with the CLI exit codes of DESIGN.md: 1 bad input or policy, 2 usage, >2 internal; and `printable`,
through which every message that may hold a user's bytes reaches the terminal."""


class DipsimError(Exception):
    """Base class of the errors dipsim raises on purpose."""

    exit_code = 3


class InputError(DipsimError, ValueError):
    """The input cannot be used: the message names the file, row/field and what is wrong."""

    exit_code = 1


class OutputError(DipsimError, OSError):
    """A result cannot be written (a read-only or missing folder, a full disk): "cannot write PATH: reason"."""

    exit_code = 1


# C0 controls but newline and tab, DEL and the C1 controls: ESC [ 2 J clears a terminal, ESC ] 52 writes the
# clipboard, CR overwrites the line, NUL and BEL upset logs. Each is shown as its escape (\x1b, \r, \x00, \x9b).
_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0)) if c not in (0x09, 0x0A)}
_CONTROLS[0x0D] = "\\r"


def printable(text: object) -> str:
    """`text` with terminal control characters escaped (newline and tab kept): what a garbage file's bytes may
    carry into a message cannot move the cursor, recolour or clear the screen of the user reading it."""
    return str(text).translate(_CONTROLS)
