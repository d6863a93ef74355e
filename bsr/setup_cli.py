"""``bsrsetup`` entry point (the implementation lives in :mod:`bsr.setup`).

Start-up time matters: bsradm runs bsrsetup once per object, and importing
the ``pyroute2`` package runs its ``__init__``, which loads every pyroute2
module (IPRoute, NDB, conntrack, asyncio ...) although bsr only needs the
generic-netlink socket.  :func:`light_pyroute2` registers a bare package
object instead, so only the submodules bsr imports are loaded (about five
times less import work).  It does nothing when pyroute2 is already loaded.
"""

from __future__ import annotations

import importlib.util
import sys
import types


def light_pyroute2() -> None:
    if "pyroute2" in sys.modules:
        return
    spec = importlib.util.find_spec("pyroute2")
    if spec is None or not spec.submodule_search_locations:
        return
    pkg = types.ModuleType("pyroute2")
    pkg.__path__ = list(spec.submodule_search_locations)
    pkg.__spec__ = spec
    pkg.__file__ = spec.origin
    sys.modules["pyroute2"] = pkg


def main(argv: list[str] | None = None) -> int:
    light_pyroute2()
    from bsr.setup.cli import main as setup_main
    return setup_main(argv)


if __name__ == "__main__":
    sys.exit(main())
