"""The decrypted key reaches the provider and nothing else: not an error line, not a log
record, whatever the provider's error message or exception says."""

from __future__ import annotations

import json
import logging

import pytest

from actana.providers.redact import REDACTED
from tests.integration.gateway.conftest import answer, crash, fail, make_gateway_run


@pytest.fixture
def key_run(context, planned):
    return make_gateway_run(context, key="sk-canary-" + "Zq8x" * 10)


def _assert_no_key(text: str, key: str) -> None:
    assert key not in text
    # Not a recognisable piece of it either (upstreams echo masked keys such as sk-...Zq8x).
    for start in range(len(key) - 8 + 1):
        assert key[start : start + 8] not in text, key[start : start + 8]


def test_the_provider_gets_the_decrypted_key(key_run, planned):
    planned.plan = [answer()]
    key_run.call()
    assert planned.attempts[0].api_key == key_run.api_key


@pytest.mark.parametrize(
    "step",
    [
        pytest.param(lambda key: fail(f"401 invalid x-api-key: {key}", status=401), id="whole"),
        pytest.param(
            lambda key: fail(f"Incorrect API key provided: {key[:14]}****{key[-10:]}"),
            id="fragments",
        ),
        pytest.param(
            lambda key: crash(RuntimeError(f"headers={{'x-api-key': '{key}'}}")), id="bug"
        ),
    ],
)
def test_no_error_line_or_log_record_holds_the_key(key_run, planned, caplog, step):
    planned.plan = [step(key_run.api_key)]
    with caplog.at_level(logging.DEBUG, logger="actana"):
        lines = key_run.call()
    assert lines[-1]["type"] == "error"
    assert lines[-1]["code"] == "model_error"
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert logged, "the failure should have been logged"
    _assert_no_key(json.dumps(lines), key_run.api_key)
    _assert_no_key(logged, key_run.api_key)


def test_the_redacted_message_still_helps(key_run, planned):
    planned.plan = [fail(f"401 invalid x-api-key: {key_run.api_key}", status=401)]
    lines = key_run.call()
    assert lines[-1]["message"] == f"401 invalid x-api-key: {REDACTED}"


def test_retry_logs_hold_no_key(key_run, planned, caplog):
    planned.plan = [
        fail(f"429 for key {key_run.api_key}", retryable=True, status=429),
        fail(f"429 again for key {key_run.api_key}", retryable=True, status=429),
        answer(),
    ]
    with caplog.at_level(logging.DEBUG, logger="actana"):
        lines = key_run.call()
    assert lines[-1]["type"] == "turn"
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert logged.count("retrying in") == 2
    _assert_no_key(logged, key_run.api_key)


def test_an_unexpected_exception_is_logged_with_its_traceback(key_run, planned, caplog):
    planned.plan = [crash(ZeroDivisionError("boom"))]
    with caplog.at_level(logging.ERROR, logger="actana"):
        lines = key_run.call()
    assert lines[-1]["message"] == (
        "the model provider failed unexpectedly (ZeroDivisionError); the server log has the details"
    )
    assert "Traceback" in caplog.text
    assert "ZeroDivisionError: boom" in caplog.text
