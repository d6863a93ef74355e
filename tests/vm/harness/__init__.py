"""Guest-kernel test harness for bsr: QEMU guests driven from pytest.

See tests/vm/conftest.py for the fixtures and README.md for an overview."""
from .guest import (
    CommandFailed,
    CommandTimeout,
    Disk,
    Guest,
    GuestBootError,
    GuestError,
    GuestSpec,
    GuestUnresponsive,
    Nic,
    Pending,
    Result,
)
from .kernel import KernelEnv, build_module, find_env
from .kernel_log import KernelLogProblem, find_problems

__all__ = [
    "CommandFailed", "CommandTimeout", "Disk", "Guest", "GuestBootError", "GuestError",
    "GuestSpec", "GuestUnresponsive", "Nic", "Pending", "Result", "KernelEnv",
    "build_module", "find_env", "KernelLogProblem", "find_problems",
]
