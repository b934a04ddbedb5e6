"""Label matcher regexes: RE2 syntax read by Python's ``re``, where the two agree.

RE2 lets an inline flag group such as ``(?i)`` appear anywhere; it applies from there to the end
of the enclosing group. Python accepts such flags only at the start of the pattern, but reads the
scoped form ``(?i:...)`` with the same meaning, so ``compile`` rewrites ``x(?i)yz`` into
``x(?i:yz)``. Where that would change the meaning (an alternation ``|`` after the flags in the
same group) or the flags are ones Python lacks (``U``), the pattern is left alone and the
``re.error`` propagates, to be reported as unsupported.
"""

from __future__ import annotations

import re

_INLINE_FLAGS = re.compile(r"\(\?([a-zA-Z-]*)\)")


def compile_re2(pattern: str) -> re.Pattern[str]:
    """Returns: ``pattern`` compiled with ``.`` matching newlines, as Prometheus does.

    Raises: re.error when Python cannot read it with RE2's meaning.
    """
    try:
        return re.compile(pattern, re.DOTALL)
    except re.error:
        scoped = scope_inline_flags(pattern)
        if scoped is None:
            raise
        return re.compile(scoped, re.DOTALL)


def scope_inline_flags(pattern: str) -> str | None:
    """Returns: ``pattern`` with every inline flag group after its start rewritten as a scoped
    group running to the end of the enclosing group, or None if that is not equivalent."""
    out: list[str] = []
    # Per open group: how many scoped flag groups to close with it.
    pending = [0]
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if c == "[":
            end = _class_end(pattern, i)
            if end < 0:
                return None
            out.append(pattern[i:end])
            i = end
            continue
        flags = _INLINE_FLAGS.match(pattern, i)
        if flags is not None and i > 0:
            if not flags.group(1) or set(flags.group(1)) - set("ims-"):
                return None
            out.append(f"(?{flags.group(1)}:")
            pending[-1] += 1
            i = flags.end()
            continue
        if c == "(":
            pending.append(0)
        elif c == ")":
            if len(pending) == 1:
                return None
            out.append(")" * pending.pop())
        elif c == "|" and pending[-1]:
            return None
        out.append(c)
        i += 1
    out.append(")" * pending[-1])
    return "".join(out)


def _class_end(pattern: str, start: int) -> int:
    """Returns: the index after the ``]`` closing the class opened at ``start``, or -1."""
    i = start + 1
    if i < len(pattern) and pattern[i] == "^":
        i += 1
    if i < len(pattern) and pattern[i] == "]":
        i += 1
    while i < len(pattern):
        if pattern[i] == "\\":
            i += 2
            continue
        if pattern[i] == "]":
            return i + 1
        i += 1
    return -1
