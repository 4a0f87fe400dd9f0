"""`sanitize_name` and `dedupe_name`: every name an uploader can send becomes a safe one."""

from __future__ import annotations

import re

import pytest

from actana.files.assets import dedupe_name, sanitize_name

SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@pytest.mark.parametrize(
    ("original", "expected"),
    [
        ("report.pdf", "report.pdf"),
        ("Quarterly Report (final).xlsx", "Quarterly_Report_final.xlsx"),
        # unicode: accents fold, other scripts and emoji become '_' (and then 'file')
        ("résumé.pdf", "resume.pdf"),
        ("Ünïcödé naïve.txt", "Unicode_naive.txt"),
        ("报告.csv", "file.csv"),
        ("数据 2024.csv", "2024.csv"),
        ("🎉 party.png", "party.png"),
        ("🎉", "file"),
        ("ﬁnal.md", "final.md"),  # NFKC: the 'fi' ligature is two letters
        # path-like names keep only the last component
        ("../../etc/passwd", "passwd"),
        ("C:\\x\\y.txt", "y.txt"),
        ("/abs/a.txt", "a.txt"),
        ("a/b/c.txt", "c.txt"),
        ("a\\b/c\\d.txt", "d.txt"),
        ("dir/", "dir"),
        ("x\uff0f..\uff0f..\uff0fy.txt", "y.txt"),  # full-width solidus: a slash after NFKC
        # leading dots, dashes, underscores
        (".bashrc", "bashrc"),
        ("...txt", "txt"),
        (".hidden.txt", "hidden.txt"),
        ("-rf.sh", "rf.sh"),
        ("__init__.py", "init.py"),
        # control and invisible characters
        ("a\x00b.txt", "a_b.txt"),
        ("line\r\nbreak.txt", "line_break.txt"),
        ("\x1b[31mred.log", "31mred.log"),
        ("invoice\u202egpj.exe", "invoice_gpj.exe"),  # right-to-left override
        ("tab\there.csv", "tab_here.csv"),
        # trailing dots and spaces go, as on Windows
        ("report.pdf.", "report.pdf"),
        ("notes.txt  ", "notes.txt"),
        ("name .md", "name.md"),
        # Windows device names
        ("CON.txt", "CON_.txt"),
        ("nul", "nul_"),
        ("com1.tar.gz", "com1_.tar.gz"),
        # nothing left
        ("", "file"),
        (".", "file"),
        ("..", "file"),
        ("...", "file"),
        ("/", "file"),
        ("   ", "file"),
        ("\uff0e\uff0e", "file"),  # full-width dots are dots after NFKC
        # an "extension" of junk is dropped, a very long one is part of the name
        ("data.报告", "data"),
        ("a.b_c", "a.b_c"),
    ],
)
def test_sanitize_name(original: str, expected: str) -> None:
    assert sanitize_name(original) == expected
    assert SAFE.match(expected)


def test_long_names_are_capped_keeping_the_extension() -> None:
    name = sanitize_name("a" * 500 + ".pdf")
    assert len(name) == 200
    assert name.endswith("aaa.pdf")
    assert sanitize_name("b" * 500) == "b" * 200
    assert len(sanitize_name("é" * 300 + ".docx", max_length=50)) == 50


def test_an_overlong_extension_is_not_kept_as_one() -> None:
    name = sanitize_name("x." + "y" * 300)
    assert len(name) == 200
    assert name.startswith("x.yyy")


@pytest.mark.parametrize(
    "original",
    ["", ".", "..", "../..", "\x00", "\u200b", "....", "-", "_", "\\", "/..", "a/../.."],
)
def test_sanitize_never_returns_an_unsafe_name(original: str) -> None:
    name = sanitize_name(original)
    assert name not in {"", ".", ".."}
    assert SAFE.match(name)


def test_dedupe_keeps_a_free_name() -> None:
    assert dedupe_name("report.pdf", set()) == "report.pdf"
    assert dedupe_name("report.pdf", {"other.pdf"}) == "report.pdf"


def test_dedupe_counts_up_for_several_equal_names() -> None:
    taken: set[str] = set()
    names = []
    for _ in range(4):
        name = dedupe_name("report.pdf", taken)
        taken.add(name)
        names.append(name)
    assert names == ["report.pdf", "report-1.pdf", "report-2.pdf", "report-3.pdf"]


def test_dedupe_ignores_case() -> None:
    assert dedupe_name("Report.PDF", {"report.pdf"}) == "Report-1.PDF"
    assert dedupe_name("report.pdf", {"REPORT.PDF", "Report-1.pdf"}) == "report-2.pdf"


def test_dedupe_without_extension_and_at_the_length_cap() -> None:
    assert dedupe_name("README", {"readme"}) == "README-1"
    long = "a" * 196 + ".pdf"
    deduped = dedupe_name(long, {long}, max_length=200)
    assert len(deduped) == 200
    assert deduped.endswith("-1.pdf")


def test_dedupe_does_not_modify_taken() -> None:
    taken = {"a.txt"}
    assert dedupe_name("a.txt", taken) == "a-1.txt"
    assert taken == {"a.txt"}
