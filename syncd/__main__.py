"""`python -m syncd`: the `syncd` command, as the installed script runs it."""

from __future__ import annotations

import sys

from syncd.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
