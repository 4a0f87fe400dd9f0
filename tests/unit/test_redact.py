"""`redact`: the key, and any piece of it long enough to matter, never leaves the gateway."""

from __future__ import annotations

import pytest

from actana.providers.redact import REDACTED, redact

KEY = "sk-ant-api03-Q1w2E3r4T5y6U7i8O9p0AaSsDdFfGgHh"


def test_the_whole_key_is_replaced():
    assert redact(f"bad key {KEY}, try again", KEY) == f"bad key {REDACTED}, try again"


def test_every_occurrence_is_replaced():
    assert redact(f"{KEY}{KEY} and {KEY}", KEY) == f"{REDACTED} and {REDACTED}"


def test_a_masked_key_loses_its_readable_pieces():
    masked = f"Incorrect API key provided: {KEY[:12]}***************{KEY[-9:]}."
    out = redact(masked, KEY)
    assert out == f"Incorrect API key provided: {REDACTED}***************{REDACTED}."


@pytest.mark.parametrize("piece", [KEY[5:13], KEY[20:40], KEY[-8:]])
def test_any_eight_characters_of_the_key_count(piece):
    assert piece not in redact(f"x{piece}y", KEY)


def test_seven_characters_are_not_key_material():
    assert redact(f"x{KEY[20:27]}y", KEY) == f"x{KEY[20:27]}y"


def test_text_without_the_key_is_unchanged():
    text = "This model's maximum context length is 200000 tokens."
    assert redact(text, KEY) == text


@pytest.mark.parametrize("key", [None, ""])
def test_no_key_nothing_to_hide(key):
    assert redact("anything at all", key) == "anything at all"


def test_a_short_placeholder_key_is_replaced_only_whole():
    assert redact("ollama refused key ollama", "ollama") == f"{REDACTED} refused key {REDACTED}"
