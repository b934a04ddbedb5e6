"""The template functions rule templates may call, with Prometheus' (and Go's) output.

From Prometheus' template/template.go: the humanize family, ``printf``, case changes,
``reReplaceAll``, ``match``, ``stripPort``; from Go's text/template: the comparisons and
``and``/``or``/``not``. Argument errors are ``TemplateError``s, which a template renders as
Prometheus does.
"""

from __future__ import annotations

import inspect
import math
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

from server.promql.regex import scope_inline_flags
from server.rules.errors import TemplateError
from server.rules.gofmt import format_float_v, go_type, sprintf

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def call(name: str, function: Callable[..., object], args: list[object]) -> object:
    """Returns: ``function(*args)``, checking the count as Go does."""
    signature = inspect.signature(function)
    params = list(signature.parameters.values())
    variadic = any(p.kind is p.VAR_POSITIONAL for p in params)
    fixed = [p for p in params if p.kind is not p.VAR_POSITIONAL]
    if len(args) < len(fixed) or (not variadic and len(args) > len(fixed)):
        want = f"at least {len(fixed)}" if variadic else str(len(fixed))
        raise TemplateError(f"wrong number of args for {name}: want {want} got {len(args)}")
    return function(*args)


def _float(value: object) -> float:
    """Prometheus' ``convertToFloat``: float, int or a string ``strconv.ParseFloat`` reads."""
    if isinstance(value, bool):
        raise TemplateError("can't convert bool to float")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.replace("_", "x") if "_" in value else value)
        except ValueError as exc:
            raise TemplateError(f'strconv.ParseFloat: parsing "{value}": invalid syntax') from exc
    raise TemplateError(f"can't convert {go_type(value)} to float")


def _g4(value: float) -> str:
    """Go's ``%.4g`` (Python's agrees for finite values)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return f"{value:.4g}"


def humanize(value: object) -> str:
    v = _float(value)
    if v == 0 or math.isnan(v) or math.isinf(v):
        return _g4(v)
    prefix = ""
    if abs(v) >= 1:
        for p in ("k", "M", "G", "T", "P", "E", "Z", "Y"):
            if abs(v) < 1000:
                break
            prefix = p
            v /= 1000
        return _g4(v) + prefix
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(v) >= 1:
            break
        prefix = p
        v *= 1000
    return _g4(v) + prefix


def humanize1024(value: object) -> str:
    v = _float(value)
    if abs(v) <= 1 or math.isnan(v) or math.isinf(v):
        return _g4(v)
    prefix = ""
    for p in ("ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"):
        if abs(v) < 1024:
            break
        prefix = p
        v /= 1024
    return _g4(v) + prefix


def humanize_duration(value: object) -> str:  # noqa: PLR0911 - one branch per Prometheus case
    v = _float(value)
    if math.isnan(v) or math.isinf(v):
        return _g4(v)
    if v == 0:
        return _g4(v) + "s"
    if abs(v) >= 1:
        sign = "-" if v < 0 else ""
        v = abs(v)
        duration = int(v)
        seconds = duration % 60
        minutes = (duration // 60) % 60
        hours = (duration // 3600) % 24
        days = duration // 86400
        if days:
            return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
        if hours:
            return f"{sign}{hours}h {minutes}m {seconds}s"
        if minutes:
            return f"{sign}{minutes}m {seconds}s"
        return f"{sign}{_g4(v)}s"
    prefix = ""
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(v) >= 1:
            break
        prefix = p
        v *= 1000
    return f"{_g4(v)}{prefix}s"


def humanize_percentage(value: object) -> str:
    return _g4(_float(value) * 100) + "%"


def humanize_timestamp(value: object) -> str:
    """Go's ``time.Time.String()`` of the UTC time ``value`` seconds after the epoch, to the ms."""
    v = _float(value)
    if math.isnan(v) or math.isinf(v):
        return _g4(v)
    nanos_float = v * 1e9
    if nanos_float >= 2.0**63 or nanos_float < -(2.0**63):
        raise TemplateError(
            f"{format_float_v(v)} cannot be represented as a nanoseconds timestamp since it "
            "overflows int64"
        )
    nanos = int(nanos_float)
    # Prometheus goes through model.Time, which holds milliseconds (truncated toward zero).
    millis = abs(nanos) // 1_000_000 * (1 if nanos >= 0 else -1)
    seconds, fraction = divmod(millis, 1000)
    moment = _EPOCH + timedelta(seconds=seconds)
    text = moment.strftime("%Y-%m-%d %H:%M:%S")
    if fraction:
        text += "." + f"{fraction:03d}".rstrip("0")
    return text + " +0000 UTC"


def printf(template: object, *args: object) -> str:
    if not isinstance(template, str):
        raise TemplateError(f"printf: format must be a string, not {go_type(template)}")
    return sprintf(template, args)


def _string(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise TemplateError(f"{name}: wrong type for value; expected string; got {go_type(value)}")
    return value


def to_upper(value: object) -> str:
    return _string("toUpper", value).upper()


def to_lower(value: object) -> str:
    return _string("toLower", value).lower()


def _is_separator(char: str) -> bool:
    """Go's strings.Title word boundary (strings.isSeparator)."""
    if ord(char) <= 0x7F:
        return not (char.isalnum() or char == "_")
    category = unicodedata.category(char)
    if category[0] in "LN":
        return False
    return char.isspace()


def title(value: object) -> str:
    text = _string("title", value)
    out: list[str] = []
    previous = " "
    for char in text:
        out.append(char.upper() if _is_separator(previous) else char)
        previous = char
    return "".join(out)


def _regex(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        scoped = scope_inline_flags(pattern)
        if scoped is None:
            raise TemplateError(f"error parsing regexp: {exc}") from exc
        return re.compile(scoped)


_GROUP_REF = re.compile(r"\$(?:\$|\{([A-Za-z0-9_]*)\}|([A-Za-z0-9_]+))")


def re_replace_all(pattern: object, replacement: object, text: object) -> str:
    """Go's ``regexp.ReplaceAllString``: ``$1``, ``${name}``, ``$$``; unknown groups are ""."""
    regex = _regex(_string("reReplaceAll", pattern))
    repl = _string("reReplaceAll", replacement)

    def expand(match: re.Match[str]) -> str:
        def group(ref: re.Match[str]) -> str:
            name = ref.group(1) if ref.group(1) is not None else ref.group(2)
            if name is None:
                return "$"
            if name.isdigit():
                index = int(name)
                return (match.group(index) or "") if index <= (regex.groups or 0) else ""
            return (match.group(name) or "") if name in regex.groupindex else ""

        return _GROUP_REF.sub(group, repl)

    return regex.sub(expand, _string("reReplaceAll", text))


def match(pattern: object, text: object) -> bool:
    return _regex(_string("match", pattern)).search(_string("match", text)) is not None


def strip_port(value: object) -> str:
    """Go's ``net.SplitHostPort`` host, or the input when it has no port."""
    text = _string("stripPort", value)
    if text.startswith("["):
        close = text.find("]")
        if close > 0 and text[close + 1 : close + 2] == ":" and ":" not in text[close + 2 :]:
            return text[1:close]
        return text
    if text.count(":") == 1:
        return text.split(":")[0]
    return text


# --- Go's text/template builtins ---------------------------------------------------------------


def truth(value: object) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str | Mapping):
        return len(value) > 0
    return True


def _kind(value: object) -> str:
    kind = go_type(value)
    if kind not in ("bool", "int", "float64", "string"):
        raise TemplateError("invalid type for comparison")
    return kind


def _compare(name: str, a: object, b: object) -> int:
    if _kind(a) != _kind(b):
        raise TemplateError(f"error calling {name}: incompatible types for comparison")
    if isinstance(a, bool):
        if name not in ("eq", "ne"):
            raise TemplateError(f"error calling {name}: invalid type for comparison")
        return 0 if a == b else 1
    greater = bool(a > b)  # type: ignore[operator]
    less = bool(a < b)  # type: ignore[operator]
    return int(greater) - int(less)


def eq(a: object, *others: object) -> bool:
    if not others:
        raise TemplateError("missing argument for comparison")
    return any(_compare("eq", a, b) == 0 for b in others)


def ne(a: object, b: object) -> bool:
    return _compare("ne", a, b) != 0


def lt(a: object, b: object) -> bool:
    return _compare("lt", a, b) < 0


def le(a: object, b: object) -> bool:
    return _compare("le", a, b) <= 0


def gt(a: object, b: object) -> bool:
    return _compare("gt", a, b) > 0


def ge(a: object, b: object) -> bool:
    return _compare("ge", a, b) >= 0


def not_(value: object) -> bool:
    return not truth(value)


def and_(first: object, *rest: object) -> object:
    for value in (first, *rest):
        if not truth(value):
            return value
    return (first, *rest)[-1]


def or_(first: object, *rest: object) -> object:
    for value in (first, *rest):
        if truth(value):
            return value
    return (first, *rest)[-1]


__all__: Sequence[str] = [name for name in dir() if not name.startswith("_")]
