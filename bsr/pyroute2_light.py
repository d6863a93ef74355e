"""Load only the parts of pyroute2 that bsr uses.

Importing any ``pyroute2.*`` module first runs the package's ``__init__``,
which imports every pyroute2 module (IPRoute, NDB, conntrack, asyncio ...)
although bsr only needs the generic-netlink socket.  That costs about five
times the import work, which matters for short-lived commands: bsradm runs
bsrsetup once per object, and inside a TCG test guest each import is slow.

:func:`load` registers a bare package object for ``pyroute2`` so that only
the submodules actually imported are loaded.  It does nothing when pyroute2
is already loaded (a program that wants all of pyroute2 keeps it).
"""

from __future__ import annotations

import importlib.util
import sys
import types


def load() -> None:
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
