"""Go's ``fmt`` for the values rule templates print: ``%v`` of floats, ``printf``'s verbs.

Templates print values the way Go does (``{{ $value }}`` of 1234567 is ``1.234567e+06``), so
annotations come out byte for byte as Prometheus writes them. Covered: bool, int, float and
string operands with the verbs ``v s d f F e E g G q x X t %`` and the flags ``-+# 0``, width
and precision; Go's ``%!verb(type=value)`` for a verb that does not fit its operand.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal

_VERB = re.compile(r"%([-+# 0]*)(\*|[0-9]+)?(?:\.(\*|[0-9]*))?([a-zA-Z%])")


def go_type(value: object) -> str:
    """Returns: the Go type name of a template value."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "map[string]string"
    return "<nil>" if value is None else type(value).__name__


def _special(value: float, plus: bool = True) -> str | None:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return ("+Inf" if plus else "Inf") if value > 0 else "-Inf"
    return None


def shortest_digits(value: float) -> tuple[str, int]:
    """Returns: the shortest round-trip digits of ``abs(value)`` and its decimal point position."""
    if value == 0:
        return "0", 1
    _, digit_tuple, exponent = Decimal(repr(abs(value))).normalize().as_tuple()
    digits = "".join(str(d) for d in digit_tuple)
    assert isinstance(exponent, int)
    return digits, len(digits) + exponent


def format_float_v(value: float) -> str:
    """Returns: ``value`` as Go's ``%v`` prints a float64: shortest digits, ``%e`` form when the
    exponent is below -4 or at least 6 (``strconv.FormatFloat(v, 'g', -1, 64)``)."""
    special = _special(value)
    if special is not None:
        return special
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    digits, point = shortest_digits(value)
    exp = point - 1
    if exp < -4 or exp >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


def format_value(value: object) -> str:
    """Returns: ``value`` as a template prints it (Go's ``fmt.Sprint``)."""
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format_float_v(value)
    if isinstance(value, Mapping):
        inner = " ".join(f"{k}:{value[k]}" for k in sorted(value))
        return f"map[{inner}]"
    return str(value)


def go_quote(text: str) -> str:
    """Returns: ``text`` quoted as Go's ``strconv.Quote`` does."""
    escapes = {"\a": r"\a", "\b": r"\b", "\f": r"\f", "\n": r"\n", "\r": r"\r", "\t": r"\t"}
    escapes |= {"\v": r"\v", "\\": "\\\\", '"': '\\"'}
    out = []
    for char in text:
        if char in escapes:
            out.append(escapes[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\x{ord(char):02x}")
        elif not char.isprintable() and ord(char) > 0x7F:
            code = ord(char)
            out.append(f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _pad(text: str, flags: str, width: int | None) -> str:
    if width is None or len(text) >= width:
        return text
    if "-" in flags:
        return text.ljust(width)
    return text.rjust(width)


def _bad(verb: str, value: object) -> str:
    return f"%!{verb}({go_type(value)}={format_value(value)})"


def _number(text: str, negative: bool, flags: str, width: int | None, zero_ok: bool) -> str:
    sign = "-" if negative else ("+" if "+" in flags else (" " if " " in flags else ""))
    body = sign + text
    if zero_ok and "0" in flags and "-" not in flags and width is not None and len(body) < width:
        return sign + text.rjust(width - len(sign), "0")
    return _pad(body, flags, width)


def _float(verb: str, value: float, flags: str, width: int | None, prec: int | None) -> str:
    special = _special(value, plus="+" in flags)
    if special is not None:
        if special == "NaN" and "+" in flags:
            special = "+NaN"
        return _pad(special, flags.replace("0", ""), width)
    negative = math.copysign(1.0, value) < 0
    magnitude = abs(value)
    if verb in "vgG" and prec is None:
        text = format_float_v(magnitude)
        if verb == "G":
            text = text.upper()
    else:
        py_verb = {"F": "f"}.get(verb, verb)
        spec = f"{'#' if '#' in flags else ''}.{6 if prec is None else prec}{py_verb}"
        text = format(magnitude, spec)
    return _number(text, negative, flags, width, zero_ok=True)


def _one(  # noqa: PLR0911 - one branch per verb family
    verb: str, value: object, flags: str, width: int | None, prec: int | None
) -> str:
    if (verb in "vs" and isinstance(value, str)) or (verb == "v" and not isinstance(value, float)):
        text = format_value(value)
        if prec is not None and isinstance(value, str):
            text = text[:prec]
        return _pad(text, flags, width)
    if verb == "t":
        return (
            _pad(format_value(value), flags, width)
            if isinstance(value, bool)
            else _bad(verb, value)
        )
    if isinstance(value, bool):
        return _bad(verb, value)
    if isinstance(value, float) and verb in "vfFeEgG":
        return _float(verb, value, flags, width, prec)
    if isinstance(value, int) and verb in "dxX":
        digits = {"d": str(abs(value)), "x": f"{abs(value):x}", "X": f"{abs(value):X}"}[verb]
        if "#" in flags and verb in "xX":
            digits = ("0x" if verb == "x" else "0X") + digits
        return _number(digits, value < 0, flags, width, zero_ok=True)
    if isinstance(value, str) and verb == "q":
        return _pad(go_quote(value), flags, width)
    if isinstance(value, str) and verb in "xX":
        encoded = value.encode().hex()
        return _pad(encoded.upper() if verb == "X" else encoded, flags, width)
    return _bad(verb, value)


def sprintf(template: str, args: Sequence[object]) -> str:
    """Returns: Go's ``fmt.Sprintf(template, args...)`` for the supported verbs."""
    out: list[str] = []
    pos = 0
    index = 0
    while pos < len(template):
        start = template.find("%", pos)
        if start < 0:
            out.append(template[pos:])
            break
        out.append(template[pos:start])
        match = _VERB.match(template, start)
        if match is None:
            out.append("%!(NOVERB)")
            break
        flags, width_text, prec_text, verb = match.groups()
        pos = match.end()
        if verb == "%":
            out.append("%")
            continue
        if width_text == "*" or prec_text == "*":
            out.append(f"%!{verb}(BADWIDTH)")
            continue
        width = int(width_text) if width_text else None
        prec = None if prec_text is None else int(prec_text or "0")
        if index >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        out.append(_one(verb, args[index], flags, width, prec))
        index += 1
    if index < len(args):
        extra = ", ".join(f"{go_type(a)}={format_value(a)}" for a in args[index:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)
