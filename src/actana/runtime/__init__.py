"""The sandbox runtime: what `python -m actana.runtime` runs INSIDE a sandbox.

It redeems the run's one-time tokens over the run channel, runs the setup script, the agent loop
and its tools, prints NDJSON events on stdout and uploads the files left in `assets/`.

Import rule (a test enforces it): this package imports the standard library and
`actana.protocol` only. Every import here is paid on every run, and server code must never be
reachable from inside a sandbox. This file therefore imports nothing; `actana.runtime.main` is
the entry point.
"""
