"""The NHS number's modulus-11 check (docs/architecture.md, "No direct identifier").

Publishers identify a person by NHS number; a mistyped number must be a clear error
rather than a silently different person. The tenth digit is a check digit: weight the
first nine digits 10 down to 2, sum, and the check digit is ``11 - (sum % 11)``, where
11 means 0 and 10 means the number cannot be valid at all.

Error messages never repeat the number itself (only its length or the digits at
fault), because they travel to logs, dead-letter queues and HTTP responses.
"""

from __future__ import annotations

import re

# 3-3-4 grouping with one kind of separator (space or hyphen), or ten bare digits.
# ``[0-9]`` rather than ``\d``: other scripts' digits are not NHS numbers.
_GROUPED = re.compile(r"([0-9]{3})([ -]?)([0-9]{3})\2([0-9]{4})")
_ZERO_SUM = ord("0") * sum(range(2, 11))  # the weighted sum of nine ASCII "0" bytes


def _check_digit(nine: str) -> int:
    """The check digit for nine ASCII digits; 10 means no valid number has them.

    Weights 10..2 written out over the ASCII bytes: this runs for every envelope, and
    the unrolled form is several times faster than a generator over ``int(d)``.
    """
    b = nine.encode("ascii")
    total = (
        10 * b[0] + 9 * b[1] + 8 * b[2] + 7 * b[3] + 6 * b[4] + 5 * b[5] + 4 * b[6]
        + 3 * b[7] + 2 * b[8] - _ZERO_SUM
    )  # fmt: skip
    check = 11 - total % 11
    return 0 if check == 11 else check


def check_nhs_number(value: str) -> str:
    """The normalised 10-digit NHS number, or ValueError saying what is wrong.

    Accepts ten digits, optionally grouped 3-3-4 with spaces or with hyphens (as people
    write them), and surrounding whitespace.
    """
    if not isinstance(value, str):
        raise ValueError(f"an NHS number must be a string of 10 digits, not {type(value).__name__}")
    text = value.strip()
    if len(text) == 10 and text.isascii() and text.isdigit():
        digits = text  # the common case, without the regular expression
    else:
        match = _GROUPED.fullmatch(text)
        if match is None:
            found = sum(c.isascii() and c.isdigit() for c in text)
            raise ValueError(
                "an NHS number must be 10 digits (optionally grouped 3-3-4 with spaces "
                f"or hyphens); got {found} digit{'' if found == 1 else 's'}"
                + ("" if found == len(text) else " and other characters")
            )
        digits = match.group(1) + match.group(3) + match.group(4)
    expected = _check_digit(digits[:9])
    if expected == 10:
        raise ValueError(
            "not a valid NHS number: its check digit computes to 10, which no NHS number has"
        )
    given = int(digits[9])
    if given != expected:
        raise ValueError(
            f"NHS number check digit is wrong: expected {expected} from the first nine "
            f"digits, given {given}"
        )
    return digits


def is_valid_nhs_number(value: str) -> bool:
    """Whether ``check_nhs_number`` would accept the value."""
    try:
        check_nhs_number(value)
    except ValueError:
        return False
    return True


def make_nhs_number(nine_digits: int | str) -> str | None:
    """A valid NHS number from its first nine digits, or None when none exists.

    For test-data generators: about one in eleven nine-digit prefixes has no valid
    check digit (it computes to 10).
    """
    if isinstance(nine_digits, bool):
        raise ValueError("nine_digits must be an int or a string of 9 digits")
    if isinstance(nine_digits, int):
        if not 0 <= nine_digits < 10**9:
            raise ValueError(f"nine_digits must be in 0..999999999, got {nine_digits}")
        nine = f"{nine_digits:09d}"
    else:
        nine = nine_digits
        if not (len(nine) == 9 and nine.isascii() and nine.isdigit()):
            raise ValueError("nine_digits must be exactly 9 ASCII digits")
    check = _check_digit(nine)
    return None if check == 10 else nine + str(check)
