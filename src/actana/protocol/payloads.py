"""Payloads of the sandbox API (`/sandbox/v1`): what the runtime fetches and what it sends.

| call                       | auth                   | body / answer                    |
|----------------------------|------------------------|----------------------------------|
| GET  /sandbox/v1/env       | Bearer OTP_SETUP       | -> EnvPayload                    |
| GET  /sandbox/v1/config    | Bearer OTP_RUN         | -> ConfigPayload                 |
| POST /sandbox/v1/results   | Bearer OTP_UPLOAD      | multipart, field `files` (many)  |
| POST /sandbox/v1/model     | Bearer session token   | ModelRequest -> NDJSON stream of |
|                            |                        | GatewayDelta*, then GatewayTurn  |
|                            |                        | or GatewayError                  |
| GET  /sandbox/v1/mcp/S/tools | Bearer session token | -> McpToolList                   |
| POST /sandbox/v1/mcp/S/call  | Bearer session token | McpCallRequest -> McpCallResult  |
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from actana.protocol.events import Usage

# What the sandbox sends is validated by the server with pydantic, which reads this attribute of
# a dataclass: an unknown field (a model, base URL or key the sandbox would like to choose) is
# refused, not ignored. A plain dict, so that the runtime needs no pydantic.
_STRICT: dict[str, Any] = {"extra": "forbid"}

# Environment variables the sandbox backend gives the runtime process. The runtime reads and
# deletes the OTP_* ones before any tool runs.
ENV_CHANNEL = "ACTANA_CHANNEL"  # "unix:/path/to.sock" or "http://127.0.0.1:PORT"
ENV_OTP_SETUP = "OTP_SETUP"
ENV_OTP_RUN = "OTP_RUN"
ENV_OTP_UPLOAD = "OTP_UPLOAD"
ENV_WORKSPACE_DIR = "WORKSPACE_DIR"
ENV_RUN_ID = "ACTANA_RUN_ID"
TOKEN_ENV_VARS = (ENV_OTP_SETUP, ENV_OTP_RUN, ENV_OTP_UPLOAD)


@dataclass
class EnvPayload:
    """Answer of GET /sandbox/v1/env: the environment's variables and setup script."""

    variables: dict[str, str] = field(default_factory=dict)
    setup_script: str = ""
    # The run's deadline (epoch ms, like RunLimits.deadline_ms), so that the setup script, which
    # runs before /config is fetched, can be bounded by it too. Optional: None means unknown.
    deadline_ms: int | None = None


@dataclass
class AgentSpec:
    name: str
    system_prompt: str
    max_rounds: int = 10


@dataclass
class ModelSpec:
    """Which model the run talks to; informative only: the gateway decides, never the sandbox."""

    provider: str
    model: str


@dataclass
class RunLimits:
    """Limits the runtime applies to itself; the worker enforces the deadline from outside."""

    deadline_ms: int  # epoch milliseconds (wall clock), like the `ts` of events
    tool_timeout_sec: int = 60
    tool_output_bytes: int = 64 * 1024
    read_file_bytes: int = 256 * 1024


@dataclass
class SkillFileSpec:
    """One file of a skill bundle, as recorded when it was uploaded."""

    path: str  # relative to the skill's folder, `/`-separated
    size: int
    sha256: str
    executable: bool = False


@dataclass
class SkillSpec:
    """A skill attached to the agent (Agent Skills convention).

    The model is told `name` and `description` up front and loads `body` (the SKILL.md text)
    with the `skill` tool. A multi-file bundle (`files` not empty) is materialised by the
    trusted side, read-only, in the `skills/<name>/` folder of the run channel's directory
    (the directory that holds the channel socket; see `skills_root`), before the runtime starts.
    """

    name: str
    description: str
    body: str
    content_hash: str
    files: list[SkillFileSpec] = field(default_factory=list)


@dataclass
class McpServerSpec:
    """An MCP server attached to the agent.

    `stdio`: the runtime starts `command args...` inside the sandbox with `env` added to its
    environment. `http`: the server is reached through the bridge of the sandbox API
    (`/sandbox/v1/mcp/...`, session token); its URL and headers stay on the trusted side.
    """

    name: str
    transport: Literal["stdio", "http"]
    command: str | None = None
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)


NetworkPolicy = Literal["none", "allowlist", "open"]


@dataclass
class NetworkSpec:
    """The environment's network policy. It is enforced outside the sandbox, by the egress
    proxy listening on `egress.sock` in the run channel's directory; the runtime only uses it to
    point tools at the proxy and to refuse early (with a clear message) under `none`."""

    policy: NetworkPolicy = "none"
    allowed_domains: list[str] = field(default_factory=list)


@dataclass
class ConfigPayload:
    """Answer of GET /sandbox/v1/config."""

    run_id: str
    prompt: str
    agent: AgentSpec
    model: ModelSpec
    tools: list[str]
    limits: RunLimits
    session_token: str
    skills: list[SkillSpec] = field(default_factory=list)
    mcp_servers: list[McpServerSpec] = field(default_factory=list)
    network: NetworkSpec = field(default_factory=NetworkSpec)


# Files the trusted side puts in the run channel's directory (next to the channel socket),
# which every backend makes visible to the sandbox read-only at the same relative places.
CHANNEL_SKILLS_DIR = "skills"
CHANNEL_EGRESS_SOCKET = "egress.sock"


@dataclass
class ToolCall:
    __pydantic_config__: ClassVar[dict[str, Any]] = _STRICT

    id: str
    name: str
    args: dict[str, Any] = field(default_factory=dict)
    signature: str | None = None
    """Opaque provider data the conversation must carry back unchanged with this call (Gemini's
    thought signature, base64); the runtime never reads it."""


@dataclass
class Message:
    """One message of the provider-neutral conversation.

    `user`: `text`. `assistant`: `text` and/or `tool_calls`. `tool`: the result of one call, in
    `text` (JSON), with `tool_call_id` and `is_error`.
    """

    __pydantic_config__: ClassVar[dict[str, Any]] = _STRICT

    role: Literal["user", "assistant", "tool"]
    text: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None
    is_error: bool = False


@dataclass
class ToolSchema:
    __pydantic_config__: ClassVar[dict[str, Any]] = _STRICT

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass
class ModelRequest:
    """Body of POST /sandbox/v1/model. It names no model, endpoint or key: the run decides
    (a body with any other field is refused with a 422)."""

    __pydantic_config__: ClassVar[dict[str, Any]] = _STRICT

    system: str
    messages: list[Message]
    tools: list[ToolSchema] = field(default_factory=list)
    max_tokens: int | None = None


@dataclass
class ModelTurn:
    text: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    stop_reason: str = "end_turn"
    """Why the model stopped, in the vocabulary the providers share: `end_turn` (it answered),
    `tool_use` (it made tool calls; a provider says so whenever the turn holds any), `max_tokens`
    (the output limit, or Anthropic's full context window, cut it short), `refusal` (the model or
    the provider's safety filter declined), `pause_turn` (Anthropic paused a long turn to be
    continued). Any other value is the provider's own reason, lower case, passed on unchanged:
    OpenAI's `content_filter`, or a Gemini `finishReason` such as `language`."""
    usage: Usage = field(default_factory=Usage)


@dataclass
class GatewayDelta:
    text: str
    type: Literal["delta"] = "delta"


@dataclass
class GatewayTurn:
    turn: ModelTurn
    type: Literal["turn"] = "turn"


@dataclass
class GatewayError:
    code: str
    message: str
    type: Literal["error"] = "error"


# --- MCP bridge (`/sandbox/v1/mcp/{server}/...`, Bearer run session token) ---------------------
# `{server}` is the name of an `http` MCP server attached to the run's agent. The trusted side
# holds the server's URL and (encrypted) headers and speaks MCP upstream; the sandbox only ever
# sees tool names, schemas and results.


@dataclass
class McpToolInfo:
    """One tool of an MCP server, as the model will be offered it."""

    name: str
    description: str
    input_schema: dict[str, Any] = field(default_factory=dict)


@dataclass
class McpToolList:
    """Answer of GET /sandbox/v1/mcp/{server}/tools."""

    tools: list[McpToolInfo] = field(default_factory=list)


@dataclass
class McpCallRequest:
    """Body of POST /sandbox/v1/mcp/{server}/call. Strict: any other field (a URL or header the
    sandbox would like to add) is refused with a 422."""

    __pydantic_config__: ClassVar[dict[str, Any]] = _STRICT

    tool: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass
class McpCallResult:
    """Answer of POST /sandbox/v1/mcp/{server}/call: the upstream result, passed on.

    `content` holds MCP content blocks as JSON (`{"type": "text", "text": ...}`, images, ...);
    `is_error` is the server's own verdict on the call; `structured` its structured content, if
    any. A result larger than the bridge's cap is cut and says so in a last text block.
    """

    content: list[dict[str, Any]] = field(default_factory=list)
    is_error: bool = False
    structured: dict[str, Any] | None = None
