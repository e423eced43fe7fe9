"""Resource quantities (`500m`, `128Mi`, `1e3`) parsed and printed as Kubernetes does.

A Quantity is exact: `0.1` CPU is one hundred millicores, never 0.1000000001. We hold the
value as a `Fraction` and keep Kubernetes' three formats (DecimalSI, BinarySI,
DecimalExponent) because the format decides how the value is printed back. Kubernetes stores
quantities in canonical form, so `cpu: "1000m"` reads back as `"1"`, `memory: 2000` as `"2k"`
and `0.5` as `"500m"`; clients that compare what they wrote with what they read rely on that.

Three layers need this: decoding (a malformed quantity is a 400 with Kubernetes' parse error
text), defaulting (numbers become canonical strings; resource lists round up to millis) and
validation (`requests` must not exceed `limits`).
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

DECIMAL_SI = "DecimalSI"
BINARY_SI = "BinarySI"
DECIMAL_EXPONENT = "DecimalExponent"

FORMAT_ERROR = (
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
)
SUFFIX_ERROR = "unable to parse quantity's suffix"

_DECIMAL_SUFFIXES = {
    "n": -9,
    "u": -6,
    "m": -3,
    "": 0,
    "k": 3,
    "M": 6,
    "G": 9,
    "T": 12,
    "P": 15,
    "E": 18,
}
_DECIMAL_BY_EXPONENT = {exp: suffix for suffix, exp in _DECIMAL_SUFFIXES.items()}
_BINARY_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_BINARY_BY_POWER = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]
_SUFFIX_CHARS = frozenset("eEinumkKMGTP")
_NANO = Fraction(1, 10**9)
MILLI = Fraction(1, 1000)
_MAX_INT64_DIGITS = 18


class QuantityError(ValueError):
    """A string Kubernetes' ParseQuantity rejects; the message is Kubernetes' own."""


@dataclass(frozen=True)
class Quantity:
    value: Fraction
    format: str
    text: str = ""  # the input, when Kubernetes would print it back unchanged

    def __str__(self) -> str:
        return self.text or canonical(self.value, self.format)

    def round_up(self, step: Fraction) -> Quantity:
        """Round away from zero to a multiple of `step`, as Quantity.RoundUp does."""
        units = self.value / step
        if units.denominator == 1:
            return self
        whole = math.ceil(abs(units))
        return Quantity(whole * step * (1 if self.value > 0 else -1), self.format)


def _scan(text: str) -> tuple[bool, str, str, str]:
    """Split like parseQuantityString: (positive, integer digits, fraction digits, suffix)."""
    pos, end, positive = 0, len(text), True
    if text[0] in "+-":
        positive = text[0] == "+"
        pos = 1
    start = pos
    while pos < end and text[pos].isdigit() and text[pos].isascii():
        pos += 1
    num = text[start:pos].lstrip("0")
    denom = ""
    if pos < end and text[pos] == ".":
        pos += 1
        start = pos
        while pos < end and text[pos].isdigit() and text[pos].isascii():
            pos += 1
        denom = text[start:pos]
    suffix_start = pos
    while pos < end and text[pos] in _SUFFIX_CHARS:
        pos += 1
    if pos < end and text[pos] in "+-":
        pos += 1
    while pos < end and text[pos].isdigit() and text[pos].isascii():
        pos += 1
    if pos < end:
        raise QuantityError(FORMAT_ERROR)
    return positive, num or "0", denom, text[suffix_start:]


def _interpret(suffix: str) -> tuple[int, int, str]:
    """(base, exponent, format) of a suffix, or QuantityError."""
    if suffix in _DECIMAL_SUFFIXES:
        return 10, _DECIMAL_SUFFIXES[suffix], DECIMAL_SI
    if suffix in _BINARY_SUFFIXES:
        return 2, _BINARY_SUFFIXES[suffix], BINARY_SI
    if len(suffix) > 1 and suffix[0] in "eE":
        try:
            return 10, int(suffix[1:], 10), DECIMAL_EXPONENT
        except ValueError:
            pass
    raise QuantityError(SUFFIX_ERROR)


@functools.lru_cache(maxsize=4096)
def parse(text: str) -> Quantity:
    """Kubernetes' ParseQuantity (cached: a cluster uses few distinct quantities)."""
    if not text:
        raise QuantityError(FORMAT_ERROR)
    if text == "0":
        return Quantity(Fraction(0), DECIMAL_SI, "0")
    positive, num, denom, suffix = _scan(text)
    base, exponent, fmt = _interpret(suffix)
    magnitude = Fraction(int(num + denom), 10 ** len(denom)) * Fraction(base) ** exponent
    if magnitude % _NANO:
        magnitude = (magnitude // _NANO + 1) * _NANO  # non-zero values round up to 1n
    if fmt == BINARY_SI and 0 < magnitude < 1:
        fmt = DECIMAL_SI
    value = magnitude if positive else -magnitude
    return Quantity(value, fmt, text if _kept_verbatim(num, denom, exponent, fmt) else "")


def _kept_verbatim(num: str, denom: str, exponent: int, fmt: str) -> bool:
    """Whether Kubernetes prints the input string back as given (its canonical fast path)."""
    shifted = num + denom
    if len(num) + len(denom) > _MAX_INT64_DIGITS:
        return False
    if fmt == BINARY_SI:
        precision = 15 - len(num) - int(exponent * 3 / 10) - 1
        return precision >= 0 and not denom and exponent % 10 == 0 and int(shifted) & 7 != 0
    scale = exponent - len(denom)
    return scale >= -9 and scale % 3 == 0 and not shifted.endswith("000") and shifted[0] != "0"


@functools.lru_cache(maxsize=4096)
def canonical(value: Fraction, fmt: str) -> str:
    """The canonical text of a value in a format (Quantity.String)."""
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    magnitude = abs(value)
    if fmt == BINARY_SI and (magnitude < 1024 or magnitude.denominator != 1):
        fmt = DECIMAL_SI
    if fmt == BINARY_SI:
        mantissa, power = magnitude.numerator, 0
        while mantissa % 1024 == 0 and power < len(_BINARY_BY_POWER) - 1:
            mantissa //= 1024
            power += 1
        return f"{sign}{mantissa}{_BINARY_BY_POWER[power]}"
    mantissa, exponent = _decimal_parts(magnitude)
    if fmt == DECIMAL_EXPONENT:
        return f"{sign}{mantissa}" + (f"e{exponent}" if exponent else "")
    suffix = _DECIMAL_BY_EXPONENT.get(exponent)
    return f"{sign}{mantissa}{suffix if suffix is not None else f'e{exponent}'}"


def _decimal_parts(magnitude: Fraction) -> tuple[int, int]:
    """mantissa * 10**exponent, exponent a multiple of 3 and as large as keeps it whole."""
    exponent = 0
    while magnitude.denominator != 1:
        magnitude *= 10
        exponent -= 1
    mantissa = magnitude.numerator
    while mantissa % 10 == 0:
        mantissa //= 10
        exponent += 1
    shift = exponent % 3
    return mantissa * 10**shift, exponent - shift


_SURELY_VALID = re.compile(r"[+-]?[0-9]+(\.[0-9]*)?([numkMGTPE]|[KMGTPE]i)?")


def check_json(value: object) -> str | None:
    """Why Kubernetes would reject `value` as a Quantity, or None; fast for common forms."""
    if isinstance(value, bool):
        return FORMAT_ERROR
    if isinstance(value, int | float):
        return None
    if isinstance(value, str) and _SURELY_VALID.fullmatch(value):
        return None
    try:
        from_json(value)
    except QuantityError as err:
        return str(err)
    return None


def from_json(value: object) -> Quantity:
    """A Quantity from a decoded JSON value: a string, or a number as Kubernetes reads it."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise QuantityError(FORMAT_ERROR)
    if isinstance(value, str):
        return parse(value.strip())
    if isinstance(value, float):
        return parse(format(Decimal(repr(value)), "f"))
    return parse(str(value))
