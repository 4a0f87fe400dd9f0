"""MCP on the trusted side: sessions to `http` MCP servers (streamable HTTP) with the server's
decrypted headers, the per-run bridge the sandbox calls, and discovery at setup time.

`stdio` servers never come here: the runtime starts them inside the sandbox.
"""
