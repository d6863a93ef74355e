"""Settings: ``bsrwatch.toml`` in the platformdirs config directory.

Read with tomli; written by :func:`save` (flat ``key = value`` lines: the
file holds only strings, numbers and booleans).  Unknown keys are kept
out of :class:`Settings` but reported, values of the wrong type fall back
to the default: a broken settings file never stops the monitor.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path

import platformdirs
import tomli

MIN_REFRESH = 0.2  # at most five redraws per second


@dataclass(frozen=True)
class Settings:
    theme: str = "dark"  # dark | light
    refresh: float = 0.25  # seconds between redraws
    expert: bool = False  # no typed confirmation for dangerous actions
    ascii: bool = False  # no Unicode glyphs
    command: str = "bsradm"  # how actions are run
    timeout: float = 30.0  # seconds before an action is killed
    show_command: str = "bsrsetup show"  # "options in force" on the detail screen

    def checked(self) -> "Settings":
        return replace(
            self, refresh=max(self.refresh, MIN_REFRESH), timeout=max(self.timeout, 1.0),
            theme=self.theme if self.theme in ("dark", "light") else "dark")


def default_path() -> Path:
    return platformdirs.user_config_path("bsrwatch") / "bsrwatch.toml"


def load(path: Path) -> tuple[Settings, list[str]]:
    """Settings from ``path`` (defaults when missing) and a list of problems."""
    problems: list[str] = []
    try:
        data = tomli.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Settings(), problems
    except (OSError, UnicodeDecodeError, tomli.TOMLDecodeError) as e:
        return Settings(), [f"{path}: {e}"]
    kw: dict[str, object] = {}
    types = {f.name: type(f.default) for f in fields(Settings)}
    for k, v in data.items():
        want = types.get(k)
        if want is None:
            problems.append(f"{path}: unknown setting {k!r}")
        elif want is float and isinstance(v, (int, float)) and not isinstance(v, bool):
            kw[k] = float(v)
        elif isinstance(v, want):
            kw[k] = v
        else:
            problems.append(f"{path}: {k} must be {want.__name__}")
    return Settings(**kw).checked(), problems  # type: ignore[arg-type]


def _toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    s = str(v).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{s}"'


def dumps(s: Settings) -> str:
    lines = ["# bsrwatch settings (see docs/bsrwatch.md)"]
    lines += [f"{f.name} = {_toml_value(getattr(s, f.name))}" for f in fields(Settings)]
    return "\n".join(lines) + "\n"


def save(s: Settings, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(dumps(s), encoding="utf-8")
    tmp.replace(path)
