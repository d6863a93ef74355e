"""Guest-kernel tests: fixtures come from the harness plugin (tests/vm/harness).

Fixtures: kernel_env, bsr_ko, vm_workdir, solo (the session's single-node
guest, module by module), guest, bsr_node, bsr_disks, lab, two_guests,
make_guest (a module's own guest), guest_registry.  Every test marked ``vm``;
the suite is skipped with the reason shown when QEMU, virtme-ng or the Debian
kernel is missing.
"""
from __future__ import annotations

import pytest

from harness import plugin


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.is_registered(plugin):
        config.pluginmanager.register(plugin, "bsr_vm_harness")
