"""`python -m actana.runtime`: run one sandbox's agent (see `actana.runtime.main`)."""

import sys

from actana.runtime.main import main

sys.exit(main(sys.argv[1:]))
