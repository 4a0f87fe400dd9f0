"""Retries: only what the provider calls retryable, only before anything was streamed, only
within the run's deadline and the attempt cap; each retry logged; the call counted once."""

from __future__ import annotations

import logging
import time

from tests.integration.gateway.conftest import answer, fail, hang

LOGGER = "actana.providers.gateway"


def test_retryable_errors_are_retried_until_an_answer(gateway_run, planned, caplog):
    planned.plan = [
        fail("rate limited (429)", retryable=True, status=429),
        fail("overloaded (529)", retryable=True, status=529),
        answer("finally", usage=(7, 3)),
    ]
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        lines = gateway_run.call()
    assert [line["type"] for line in lines] == ["turn"]
    assert lines[0]["turn"]["text"] == "finally"
    assert len(planned.attempts) == 3
    # The same turn each time: a retry is not a new turn of the conversation.
    assert {a.call.turn_index for a in planned.attempts} == {0}
    retries = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
    assert len(retries) == 2, retries
    assert "attempt 1 of 4, status 429" in retries[0]
    assert "attempt 2 of 4, status 529" in retries[1]
    row = gateway_run.run_row()
    assert (row.model_calls, row.input_tokens, row.output_tokens) == (1, 7, 3)


def test_the_attempts_are_capped(gateway_run, planned, context):
    attempts = context.settings.model_retry_attempts
    planned.plan = [fail("upstream 503", retryable=True, status=503)] * attempts
    lines = gateway_run.call()
    assert len(planned.attempts) == attempts
    assert lines == [
        {
            "type": "error",
            "code": "model_error",
            "message": f"upstream 503 (gave up after {attempts} attempts)",
        }
    ]
    assert gateway_run.run_row().model_calls == 1


def test_a_non_retryable_error_is_not_retried(gateway_run, planned):
    planned.plan = [fail("the model 'nope' does not exist (404)", status=404)]
    lines = gateway_run.call()
    assert len(planned.attempts) == 1
    assert lines[-1]["message"] == "the model 'nope' does not exist (404)"


def test_nothing_is_retried_once_text_was_streamed(gateway_run, planned):
    planned.plan = [fail("connection dropped", retryable=True, after_deltas=2), answer()]
    lines = gateway_run.call()
    assert len(planned.attempts) == 1, "a retry would stream the same text twice"
    assert [line["type"] for line in lines] == ["delta", "delta", "error"]
    assert lines[-1]["message"] == "connection dropped"


def test_retry_after_is_honoured(gateway_run, planned):
    planned.plan = [fail("slow down", retryable=True, retry_after=0.3, status=429), answer()]
    lines = gateway_run.call()
    assert lines[-1]["type"] == "turn"
    first, second = planned.attempts
    assert second.at - first.at >= 0.3


def test_no_retry_that_would_end_past_the_deadline(gateway_run, planned):
    gateway_run.set_deadline(2)
    planned.plan = [fail("slow down", retryable=True, retry_after=30, status=429), answer()]
    started = time.monotonic()
    lines = gateway_run.call()
    assert time.monotonic() - started < 1.5, "it waited instead of giving up"
    assert len(planned.attempts) == 1
    assert lines[-1]["message"] == (
        "slow down (attempt 1; no time left before the run's deadline to try again)"
    )


def test_each_attempt_gets_the_time_left(gateway_run, planned):
    gateway_run.set_deadline(20)
    planned.plan = [fail("503", retryable=True, status=503), answer()]
    gateway_run.call()
    first, second = (a.call.timeout_sec for a in planned.attempts)
    assert 18 < first <= 20
    assert second < first


def test_a_provider_that_hangs_is_cut_at_the_deadline(gateway_run, planned):
    gateway_run.set_deadline(1)
    planned.plan = [hang()]
    started = time.monotonic()
    lines = gateway_run.call()
    elapsed = time.monotonic() - started
    assert 0.5 < elapsed < 2.5, elapsed
    assert lines == [
        {
            "type": "error",
            "code": "model_error",
            "message": "the model did not answer before the run's deadline",
        }
    ]


def test_a_run_past_its_deadline_calls_nobody(gateway_run, planned):
    gateway_run.set_deadline(-1)
    lines = gateway_run.call()
    assert planned.attempts == []
    assert lines[-1]["message"] == "the run's deadline passed before the model was called"
    assert gateway_run.run_row().model_calls == 0
