"""`python -m actana` is the `actana` command."""

from actana.cli.main import main

main()
