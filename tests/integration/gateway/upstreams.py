"""The providers' fake upstreams behind one small interface, for the gateway's cross-provider
tests (the key canary, the headers a sandbox sends): plan a tool call or a text, read the keys,
models and bodies the upstream received."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

from tests.fakes import gemini_api
from tests.fakes.anthropic_api import FakeAnthropic
from tests.fakes.http import serve
from tests.fakes.openai_api import FakeOpenAI


@dataclass
class Upstream:
    """One provider's fake, served; `base_url` is what the endpoint is given."""

    provider: str
    model: str
    fake: Any
    base_url: str

    def plan_tool(self, name: str, args: dict[str, Any]) -> None:
        self.fake.reply(tool_calls=[(name, args)])

    def plan_text(self, text: str) -> None:
        self.fake.reply(text=text)

    def keys_seen(self) -> set[str]:
        """Every key any request presented, in whatever header (or query) it came."""
        return set(self.fake.keys_seen())

    def model_of(self, request: Any) -> str:
        return str(request.body["model"])

    def requests(self) -> list[Any]:
        """Recorded requests: `.headers` (dict, lower-case names) and `.body` (JSON)."""
        return list(self.fake.requests)

    def problems(self) -> list[str]:
        return list(self.fake.problems)


class GeminiUpstream(Upstream):
    def plan_tool(self, name: str, args: dict[str, Any]) -> None:
        self.fake.plan(gemini_api.reply(calls=[(name, args)]))

    def plan_text(self, text: str) -> None:
        self.fake.plan(gemini_api.reply(text=text))

    def keys_seen(self) -> set[str]:
        seen = set()
        for request in self.fake.requests:
            seen.update(v for n, v in request.headers.items() if n == "x-goog-api-key")
            seen.update(v for n, v in request.query.items() if n == "key")
        return seen

    def model_of(self, request: Any) -> str:
        return str(request.model)


@contextmanager
def anthropic(key: str) -> Iterator[Upstream]:
    fake = FakeAnthropic(api_key=key)
    with serve(fake.app) as url:
        yield Upstream("anthropic", "claude-x", fake, url)


@contextmanager
def openai(key: str) -> Iterator[Upstream]:
    fake = FakeOpenAI(key)
    with serve(fake.app) as url:
        yield Upstream("openai", "gpt-x", fake, f"{url}/v1")


@contextmanager
def openai_compatible(key: str) -> Iterator[Upstream]:
    # A server that checks a key, as a LiteLLM proxy does (the quirks of local servers, such as
    # refusing stream_options, are tests/integration/providers/test_openai.py's business).
    fake = FakeOpenAI(key, strict_max_tokens=False)
    with serve(fake.app) as url:
        yield Upstream("openai_compatible", "local-model", fake, f"{url}/v1")


@contextmanager
def gemini(key: str) -> Iterator[Upstream]:
    fake = gemini_api.FakeGemini(api_key=key, models=("gemini-x",))
    with serve(fake) as url:
        yield GeminiUpstream("gemini", "gemini-x", fake, url)


UPSTREAMS: dict[str, Callable[[str], AbstractContextManager[Upstream]]] = {
    "anthropic": anthropic,
    "gemini": gemini,
    "openai": openai,
    "openai_compatible": openai_compatible,
}
"""Provider name -> a context manager serving its fake for a given key."""


def key_for(provider: str, unique: str) -> str:
    """A key of the provider's usual shape that holds `unique`."""
    prefix = {
        "anthropic": "sk-ant-api03-",
        "openai": "sk-proj-",
        "openai_compatible": "sk-litellm-",
        "gemini": "AIza",
    }[provider]
    return prefix + unique
