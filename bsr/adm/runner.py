"""Running (or, with -d, printing) low-level command lines."""
from __future__ import annotations

import importlib
import io
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from typing import TextIO

from .plan import Argv

# Program name -> (environment override, module with main()).
TOOLS = {
    "bsrsetup": ("BSRSETUP", "bsr.setup_cli"),
    "bsrmeta": ("BSRMETA", "bsr.meta_cli"),
}
# Tools whose main(argv, stdout=, stderr=, stdin=) can run inside bsradm when
# no installed program is found: saves an interpreter start per call.
IN_PROCESS = {"bsrsetup": "bsr.setup.cli"}
EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_USAGE = 0, 1, 10, 20


def resolve(tool: str) -> list[str]:
    """How to start ``tool``: $BSRSETUP/$BSRMETA, next to python, PATH, or the module."""
    env, module = TOOLS[tool]
    if os.environ.get(env):
        return shlex.split(os.environ[env])
    beside = os.path.join(os.path.dirname(sys.executable), tool)
    if os.access(beside, os.X_OK):
        return [beside]
    found = shutil.which(tool)
    if found:
        return [found]
    return [sys.executable, "-c", f"import sys; from {module} import main; sys.exit(main())"]


@dataclass
class Runner:
    dry_run: bool = False
    verbose: bool = False
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)

    def _in_process(self, argv: Argv, capture: bool) -> subprocess.CompletedProcess | None:
        env, _ = TOOLS[argv[0]]
        module = IN_PROCESS.get(argv[0])
        if module is None or resolve(argv[0])[0] != sys.executable or os.environ.get(env):
            return None
        out = io.StringIO() if capture else self.out
        try:
            rc = importlib.import_module(module).main(argv[1:], stdout=out, stderr=self.err,
                                                      stdin=io.StringIO(""))
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        return subprocess.CompletedProcess(argv, rc or 0,
                                           out.getvalue() if capture else "", "")

    def _exec(self, argv: Argv, capture: bool) -> subprocess.CompletedProcess:
        done = self._in_process(argv, capture)
        if done is not None:
            return done
        real = resolve(argv[0]) + argv[1:]
        try:
            return subprocess.run(real, text=True, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE if capture else None)
        except OSError as e:
            self.err.write(f"bsradm: cannot run {argv[0]}: {e.strerror or e}\n")
            return subprocess.CompletedProcess(real, 127, "", "")

    def run(self, argv: Argv) -> int:
        """Run one command (or print it with -d); bsradm's exit code for it.

        Any failure of a low-level tool is a failed command (1) for bsradm,
        whatever code the tool used: its 10 ("no such resource") and 20
        ("module not loaded") are not errors in the admin's configuration or
        command line, which is what bsradm's 10 and 20 mean.
        """
        return EXIT_OK if self._run_raw(argv) == EXIT_OK else EXIT_FAILED

    def _run_raw(self, argv: Argv) -> int:
        if self.dry_run:
            self.out.write(shlex.join(argv) + "\n")
            self.out.flush()
            return EXIT_OK
        if self.verbose:
            self.err.write(shlex.join(argv) + "\n")
        self.out.flush()
        return self._exec(argv, capture=False).returncode

    def query(self, argv: Argv) -> tuple[int, str]:
        """Run a read-only command even with -d; (exit code, stdout)."""
        if self.verbose:
            self.err.write(shlex.join(argv) + "\n")
        done = self._exec(argv, capture=True)
        return done.returncode, done.stdout or ""

    def run_all(self, cmds: list[Argv], what: str) -> int:
        """Run commands in order; stop at the first failure and say where."""
        for i, argv in enumerate(cmds):
            rc = self._run_raw(argv)
            if rc != EXIT_OK:
                self.err.write(f"bsradm: {what}: '{shlex.join(argv)}' failed (exit code {rc}); "
                               f"{len(cmds) - i - 1} later step(s) not run\n")
                return EXIT_FAILED
        return EXIT_OK
