"""Keep a decrypted key out of every message that leaves the gateway.

Upstream errors and SDK exceptions sometimes quote the key they were given ("Incorrect API key
provided: sk-..."), whole or in part. Whatever the gateway logs or hands to a sandbox or an API
caller goes through `redact` first.
"""

from __future__ import annotations

REDACTED = "[redacted]"
FRAGMENT = 8
"""Any run of this many consecutive characters of the key counts as key material."""


def redact(text: str, key: str | None) -> str:
    """`text` with the key, and every fragment of it of `FRAGMENT` or more characters, replaced.

    A key shorter than `FRAGMENT` (a placeholder such as `ollama`) is replaced only whole.
    """
    if not key or not text:
        return text
    if len(key) < FRAGMENT:
        return text.replace(key, REDACTED)
    grams = {key[i : i + FRAGMENT] for i in range(len(key) - FRAGMENT + 1)}
    hidden = [False] * len(text)
    for start in range(len(text) - FRAGMENT + 1):
        if text[start : start + FRAGMENT] in grams:
            hidden[start : start + FRAGMENT] = [True] * FRAGMENT
    if not any(hidden):
        return text
    out: list[str] = []
    for position, char in enumerate(text):
        if not hidden[position]:
            out.append(char)
        elif position == 0 or not hidden[position - 1]:
            out.append(REDACTED)
    return "".join(out)
