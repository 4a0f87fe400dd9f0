"""The gateway's wait between two attempts: exponential, capped, fully jittered; the upstream's
Retry-After wins."""

from __future__ import annotations

import pytest

from actana.providers.gateway import retry_delay


@pytest.mark.parametrize(("attempt", "ceiling"), [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0)])
def test_the_ceiling_doubles_per_attempt_up_to_the_cap(attempt, ceiling):
    assert retry_delay(attempt, None, base=0.5, cap=8.0, rand=0.999999) == pytest.approx(
        ceiling, rel=1e-4
    )


def test_the_cap_holds_for_late_attempts():
    assert retry_delay(30, None, base=0.5, cap=8.0, rand=0.999999) == pytest.approx(8.0, rel=1e-4)


@pytest.mark.parametrize("rand", [0.0, 0.25, 0.5, 0.75])
def test_full_jitter_spreads_over_zero_to_the_ceiling(rand):
    assert retry_delay(3, None, base=0.5, cap=8.0, rand=rand) == pytest.approx(2.0 * rand)


@pytest.mark.parametrize("retry_after", [0.0, 1.5, 20.0])
def test_retry_after_wins_even_over_the_cap(retry_after):
    assert retry_delay(1, retry_after, base=0.5, cap=8.0, rand=0.3) == retry_after
