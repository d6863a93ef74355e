import sys

from bsrmon.cli import main

sys.exit(main())
