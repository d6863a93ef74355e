"""``bsrsetup`` entry point (the implementation lives in :mod:`bsr.setup`).

Start-up time matters (bsradm runs bsrsetup once per object): the package
is imported only when called, and :mod:`bsr.netlink` loads just the parts
of pyroute2 it uses (see :mod:`bsr.pyroute2_light`).
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from bsr.setup.cli import main as setup_main
    return setup_main(argv)


if __name__ == "__main__":
    sys.exit(main())
