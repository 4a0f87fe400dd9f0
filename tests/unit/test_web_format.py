"""How the web pages write durations: cut, never rounded, in the largest two units (the
browser tests check that static/run.js and runs.js write the same)."""

from __future__ import annotations

import pytest

from actana.web.templating import format_duration


@pytest.mark.parametrize(
    ("ms", "shown"),
    [
        (None, "\u2013"),
        (0, "0 ms"),
        (999.9, "999 ms"),
        (1000, "1.0 s"),
        (1250, "1.2 s"),  # a tie is cut, as JavaScript's Math.floor does, not rounded to even
        (1999, "1.9 s"),
        (59_999, "59.9 s"),
        (60_000, "1 min 0 s"),
        (83_000, "1 min 23 s"),
        (3_599_999, "59 min 59 s"),
        (3_600_000, "1 h 0 min"),
        (4_500_000 + 59_000, "1 h 15 min"),
        (30 * 3_600_000, "30 h 0 min"),
    ],
)
def test_durations_are_cut_to_two_units(ms, shown):
    assert format_duration(ms) == shown
