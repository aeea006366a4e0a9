"""The one rule for untrusted text shown to a person (bootstrapper.text.one_line)."""

from __future__ import annotations

import pytest

from bootstrapper.text import one_line


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("Chrome\nCommand: RestartNow:", "Chrome Command: RestartNow:"),  # no forged line
        ("  a \t\r\n\u2028 b  ", "a b"),  # white space folded, ends stripped
        ("\x1b]0;pwned\x07", "\\x1b]0;pwned\\x07"),  # escape and bell visible, never obeyed
        ("ad\u200bmin", "ad\\u200bmin"),  # a zero-width space cannot disguise a name
        ("abc\u202edcba", "abc\\u202edcba"),  # nor can a bidi override reorder it
        ("\ufeffname\u00ad", "\\ufeffname\\xad"),  # BOM and soft hyphen are format characters too
        ("lone \ud800", "lone \\ud800"),  # a lone surrogate would break every writer
        ("[bold]x[/] café 日本", "[bold]x[/] café 日本"),  # printable text is kept as it is
    ],
)
def test_one_line_rules(raw: str, shown: str) -> None:
    assert one_line(raw, None) == shown


def test_limit_cuts_with_an_ellipsis_and_none_never_cuts() -> None:
    assert one_line("x" * 10, 5) == "xxxx…"
    assert one_line("x" * 500, None) == "x" * 500


def test_markup_is_escaped_only_when_asked() -> None:
    assert one_line("[blink]hi[/]", markup=True) == "\\[blink]hi\\[/]"
    assert one_line("[blink]hi[/]") == "[blink]hi[/]"


def test_any_object_is_shown_by_its_text() -> None:
    assert one_line(ValueError("bad\nthing")) == "bad thing"
