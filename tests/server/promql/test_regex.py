"""RE2 inline flags in label matcher regexes, scoped for Python's re."""

from __future__ import annotations

import re

import pytest

from server.promql.regex import compile_re2, scope_inline_flags


@pytest.mark.parametrize(
    ("pattern", "scoped"),
    [
        ("((?i)PRO).*", "((?i:PRO)).*"),
        (".*((?i)DUC).*", ".*((?i:DUC)).*"),
        ("a(?i)b", "a(?i:b)"),
        ("a(?i)b(c)d", "a(?i:b(c)d)"),
        ("(x(?i)y)|z", "(x(?i:y))|z"),
        (r"\((?i)a[)(?i)]", r"\((?i:a[)(?i)])"),
        ("a(?-i)b", "a(?-i:b)"),
    ],
)
def test_inline_flags_become_scoped_groups(pattern: str, scoped: str) -> None:
    assert scope_inline_flags(pattern) == scoped


@pytest.mark.parametrize("pattern", ["a(?i)b|c", "(a(?i)b|c)", "a(?U)b", "a(?)b", "a)b"])
def test_rewrites_that_would_change_the_meaning_are_refused(pattern: str) -> None:
    assert scope_inline_flags(pattern) is None


def test_compiled_patterns_match_as_re2_does() -> None:
    regex = compile_re2(".*((?i)DUC).*")
    assert regex.fullmatch("proDuction") and regex.fullmatch("DUC")
    assert not compile_re2("a(?i)b").fullmatch("Ab")
    assert compile_re2("a(?i)b").fullmatch("aB")
    assert compile_re2("a.b").fullmatch("a\nb")  # Prometheus 3: . matches a newline
    with pytest.raises(re.error):
        compile_re2("a(?i)b|c")
