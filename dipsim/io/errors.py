"""Error types with the CLI exit codes of DESIGN.md: 1 bad input or policy, 2 usage, >2 internal."""


class DipsimError(Exception):
    """Base class of the errors dipsim raises on purpose."""

    exit_code = 3


class InputError(DipsimError, ValueError):
    """The input cannot be used: the message names the file, row/field and what is wrong."""

    exit_code = 1
