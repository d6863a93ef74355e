"""Broken configurations: each gives a precise file:line:column and says what is expected."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from bsr.config import ConfigError, load

DATA = Path(__file__).parent / "data" / "configs"
BAD = sorted((DATA / "bad").glob("*.conf"))


def _expectation(path: Path) -> tuple[str, str]:
    first = path.read_text().splitlines()[0]
    m = re.match(r"^# expect: (?:(\S+\.\w+):)?(\d+:\d+): (.*)$", first)
    assert m, f"{path.name}: first line must be '# expect: [FILE:]LINE:COL: message'"
    return f"{m.group(1) or path.name}:{m.group(2)}", m.group(3)


@pytest.mark.parametrize("path", BAD + [DATA / "loop" / "loop.conf"], ids=lambda p: p.name)
def test_broken_config_reports_file_line_column_and_expectation(path: Path) -> None:
    where, message = _expectation(path)
    with pytest.raises(ConfigError) as info:
        load(str(path))
    text = str(info.value)
    shown_file, line, col, rest = text.split(":", 3)
    assert f"{os.path.basename(shown_file)}:{line}:{col}" == where, text
    assert message in rest, text


def test_unreadable_include_names_the_include_statement(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads files whatever their mode")
    (tmp_path / "secret.res").write_text("resource r0 {}\n")
    (tmp_path / "secret.res").chmod(0)
    (tmp_path / "bsr.conf").write_text('\n  include "secret.res";\n')
    with pytest.raises(ConfigError, match=r"bsr.conf:2:11: cannot read 'secret.res'"):
        load(str(tmp_path / "bsr.conf"))


def test_glob_include_that_matches_nothing_is_not_an_error(tmp_path: Path) -> None:
    (tmp_path / "bsr.conf").write_text('include "bsr.d/*.res";\n')
    assert load(str(tmp_path / "bsr.conf")).resources == {}


def test_error_in_included_file_names_that_file(tmp_path: Path) -> None:
    (tmp_path / "bsr.d").mkdir()
    (tmp_path / "bsr.d" / "r0.res").write_text("resource r0 {\n    net { protocol X; }\n}\n")
    (tmp_path / "bsr.conf").write_text('include "bsr.d/*.res";\n')
    with pytest.raises(ConfigError, match=r"^bsr.d/r0.res:2:20: 'protocol' expects one of A, B, C"):
        load(str(tmp_path / "bsr.conf"))


def test_missing_main_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load(str(tmp_path / "nope.conf"))
