"""The harness turns guest trouble into failing tests that show the guest's logs.

An inner pytest session (one guest shared by three tests) is run in a
subprocess; every inner test must FAIL and the report must carry the
guest's console and dmesg."""
from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from harness import KernelEnv
from harness.plugin import SOLO_NAME

pytestmark = pytest.mark.vm

HARNESS_DIR = Path(__file__).resolve().parent

INNER_CONFTEST = f"""
import sys
sys.path.insert(0, {str(HARNESS_DIR)!r})
from harness import plugin

def pytest_configure(config):
    if not config.pluginmanager.is_registered(plugin):
        config.pluginmanager.register(plugin, "bsr_vm_harness")
"""

INNER_TESTS = """
import os
import pytest

pytestmark = pytest.mark.vm

def test_inner_failing_command(guest):
    guest.check("echo inner-marker-stdout; echo inner-marker-stderr >&2; exit 7")

def test_inner_hanging_command(guest):
    guest.run("echo inner-hang-started; sleep 600", timeout=3)

def test_inner_kernel_warning(guest):
    guest.insmod(os.environ["WARNMOD_KO"])
    guest.rmmod("bsr_warnmod")
"""


@pytest.fixture(scope="module")
def inner_run(kernel_env: KernelEnv, warnmod_ko: Path, tmp_path_factory: pytest.TempPathFactory
              ) -> tuple[str, float]:
    d = tmp_path_factory.mktemp("inner")
    (d / "pytest.ini").write_text("[pytest]\nmarkers =\n    vm: guest test\n")
    (d / "conftest.py").write_text(INNER_CONFTEST)
    (d / "test_inner.py").write_text(textwrap.dedent(INNER_TESTS))
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", "-v", str(d)],
        cwd=d, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600,
        env={**__import__("os").environ, "WARNMOD_KO": str(warnmod_ko)},
    )
    return proc.stdout, time.monotonic() - start


def section(output: str, test: str) -> str:
    """The failure report of one inner test."""
    m = re.search(rf"_+ {test} _+\n(.*?)(?=\n_{{3,}} test_|\n=+ )", output, re.S)
    assert m, f"no failure report for {test}:\n{output}"
    return m.group(1)


def assert_guest_logs_shown(report: str) -> None:
    assert f"guest {SOLO_NAME} console" in report
    assert "virtme-ng-init" in report  # console text really is there
    assert f"guest {SOLO_NAME} dmesg" in report
    assert "Linux version" in report  # full kernel log of the guest


def test_failing_guest_command_fails_the_test_with_output_and_logs(inner_run: tuple[str, float]) -> None:
    out, _ = inner_run
    assert "FAILED test_inner.py::test_inner_failing_command" in out, out
    report = section(out, "test_inner_failing_command")
    assert "CommandFailed" in report and "rc=7" in report
    assert "inner-marker-stdout" in report and "inner-marker-stderr" in report
    assert_guest_logs_shown(report)


def test_hanging_guest_command_is_cut_at_its_bound_and_fails(inner_run: tuple[str, float]) -> None:
    out, _ = inner_run
    assert "FAILED test_inner.py::test_inner_hanging_command" in out, out
    report = section(out, "test_inner_hanging_command")
    assert "CommandTimeout" in report and "3s bound" in report
    assert "inner-hang-started" in report
    assert_guest_logs_shown(report)


def test_kernel_warning_fails_a_test_whose_body_passed(inner_run: tuple[str, float]) -> None:
    out, _ = inner_run
    assert "FAILED test_inner.py::test_inner_kernel_warning" in out, out
    report = section(out, "test_inner_kernel_warning")
    assert "KernelLogProblem" in report
    assert "bsr_warnmod: deliberate warning" in report
    assert "WARNING:" in report
    assert_guest_logs_shown(report)


def test_inner_session_is_bounded(inner_run: tuple[str, float]) -> None:
    out, seconds = inner_run
    assert re.search(r"=+ 3 failed", out), out
    assert seconds < 300
