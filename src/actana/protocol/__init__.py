"""The wire contract shared by the server and the sandbox runtime.

Standard library only, and nothing of the rest of `actana` is imported here: the runtime imports
this package inside the sandbox, where every import is paid on every run. The server validates
what the sandbox sends against these shapes with pydantic (a TypeAdapter reads dataclasses).
"""

PROTOCOL_VERSION = 1
