"""Reading, validating and writing case data: every row read is accepted or rejected with a reason."""

from .errors import DipsimError, InputError
from .readers import RawCases, read_cases_raw
from .validate import ValidationOptions, ValidationResult, load_cases, validate_cases

__all__ = [
    "DipsimError", "InputError", "RawCases", "ValidationOptions", "ValidationResult",
    "load_cases", "read_cases_raw", "validate_cases",
]
