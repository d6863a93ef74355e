"""bsrmon.toml: defaults, values, and clear errors for malformed ones."""
from __future__ import annotations

from pathlib import Path

import pytest

from bsrmon.cli import main, translate_slash
from bsrmon.config import Config, ConfigError, load, parse_size, save_key
from bsrmon.series import TYPES


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "bsrmon.toml"
    p.write_text(text)
    return p


def test_missing_default_file_gives_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bsrmon.config.default_config_path", lambda: tmp_path / "none.toml")
    cfg = load()
    assert cfg.period == 1.0 and cfg.types == tuple(TYPES) and cfg.listen == ""
    assert cfg.file_size_limit == 16 << 20 and cfg.total_size_limit == 256 << 20


def test_values_with_dashes_or_underscores_and_size_suffixes(tmp_path: Path) -> None:
    cfg = load(write(tmp_path, 'file-path = "/srv/log"\nperiod = 0.5\ntypes = ["iostat"]\n'
                               'file_size_limit = "512K"\ntotal-size-limit = "1GiB"\n'
                               'compress = false\nlisten = "127.0.0.1:9942"\n'))
    assert cfg.file_path == Path("/srv/log") and cfg.period == 0.5 and cfg.types == ("iostat",)
    assert cfg.file_size_limit == 512 << 10 and cfg.total_size_limit == 1 << 30
    assert cfg.compress is False and cfg.listen == "127.0.0.1:9942"


@pytest.mark.parametrize("text, message", [
    ("period = 0", r"period: must be between 0\.1 and 3600 seconds, got 0"),
    ('period = "fast"', r"period: expected seconds .* got 'fast'"),
    ('types = ["iostat", "diskstat"]', r"types: unknown type 'diskstat'; known: iostat, "),
    ('file-size-limit = "12X"', r"file-size-limit: '12X' is not a size"),
    ("total-size-limit = -5", r"total-size-limit: must be greater than 0"),
    ('listen = "9942"', r"listen: expected ADDR:PORT .* got '9942'"),
    ('compress = "maybe"', r"compress: expected yes or no, got 'maybe'"),
    ("colour = 1", r"unknown key 'colour'; known keys: "),
    ("period = [", r"not valid TOML"),
])
def test_malformed_values_name_file_key_and_what_is_accepted(
        tmp_path: Path, text: str, message: str) -> None:
    p = write(tmp_path, text + "\n")
    with pytest.raises(ConfigError, match=message) as e:
        load(p)
    assert str(e.value).startswith(str(p))


def test_cli_reports_config_errors_with_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    p = write(tmp_path, "period = 99999\n")
    assert main(["-c", str(p), "get", "period"]) == 1
    assert "period: must be between" in capsys.readouterr().err


def test_save_key_keeps_comments_and_other_keys(tmp_path: Path) -> None:
    p = write(tmp_path, "# my settings\nperiod = 1\nlisten = \"\"  # off\n")
    cfg = load(p).with_value("period", "2.5")
    save_key(p, cfg, "period")
    save_key(p, cfg.with_value("total_size_limit", "1G"), "total-size-limit")
    assert p.read_text() == '# my settings\nperiod = 2.5\nlisten = ""  # off\ntotal-size-limit = "1G"\n'
    assert load(p).total_size_limit == 1 << 30


def test_set_and_get_without_a_daemon_edit_the_file(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    p = write(tmp_path, "")
    sock = ["--socket", str(tmp_path / "none.sock")]
    assert main(["-c", str(p), *sock, "/set", "types", "iostat,network"]) == 0
    assert main(["-c", str(p), *sock, "set", "period", "0"]) == 1
    assert main(["-c", str(p), *sock, "set", "socket", "/x"]) == 1
    capsys.readouterr()
    assert main(["-c", str(p), *sock, "get", "types"]) == 0
    assert capsys.readouterr().out == "iostat,network\n"


def test_parse_size_rejects_booleans() -> None:
    with pytest.raises(ConfigError):
        parse_size(True, "x")


def test_slash_forms_translate_to_subcommands_and_options() -> None:
    assert translate_slash(["/report", "iostat", "r0", "/s", "10:00", "/json"]) == \
        ["report", "iostat", "r0", "--from", "10:00", "--json"]
    assert translate_slash(["/start"]) == ["start"]
    assert translate_slash(["/unknown"]) == ["/unknown"]


def test_config_get_formats_values() -> None:
    cfg = Config(file_size_limit=1 << 20, compress=True, types=("iostat", "ioclat"))
    assert (cfg.get("file-size-limit"), cfg.get("compress"), cfg.get("types")) == \
        ("1M", "yes", "iostat,ioclat")


def test_non_root_defaults_use_per_user_directories(monkeypatch: pytest.MonkeyPatch) -> None:
    import platformdirs

    monkeypatch.setattr("bsrmon.config.is_root", lambda: False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    cfg = Config()
    assert cfg.file_path == Path(platformdirs.user_log_dir("bsrmon"))
    assert cfg.socket.parent == Path(platformdirs.user_runtime_dir("bsrmon"))
    from bsrmon.config import default_config_path
    assert default_config_path() == Path(platformdirs.user_config_dir("bsrmon")) / "bsrmon.toml"
