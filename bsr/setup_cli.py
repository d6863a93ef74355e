"""``bsrsetup`` entry point (the implementation lives in :mod:`bsr.setup`)."""

from __future__ import annotations

import sys

from bsr.setup.cli import main

if __name__ == "__main__":
    sys.exit(main())
