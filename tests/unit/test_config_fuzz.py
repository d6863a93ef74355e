"""Whatever text it is given, the parser answers with a model or a ConfigError."""
from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bsr.config import ConfigError, dump, loads

DATA = Path(__file__).parent / "data" / "configs"
VALID = [
    (DATA / "good" / "seeds_examples.conf").read_text(),
    (DATA / "tree" / "bsr.d" / "r0.res").read_text(),
    (DATA / "tree" / "bsr.d" / "r1.res").read_text(),
]
ALPHABET = st.sampled_from(list('{};"#\n \t') + ["resource", "on", "volume", "net", "disk",
                                                  "address", "node-id", "1.2.3.4:7789", "0",
                                                  "include", "*", "x", "\\", "[", "]", "40M"])


def _parse(text: str) -> None:
    try:
        cfg = loads(text, "fuzz.conf", base_dir=str(DATA / "bad"))
    except ConfigError as e:
        assert str(e)
        return
    assert dump(loads(dump(cfg), "again.conf")) == dump(cfg)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400))
def test_random_text_gives_a_model_or_a_config_error(text: str) -> None:
    _parse(text)


@settings(max_examples=300, deadline=None)
@given(st.lists(ALPHABET, max_size=80).map(" ".join))
def test_random_token_soup_gives_a_model_or_a_config_error(text: str) -> None:
    _parse(text)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(VALID), st.data())
def test_mutated_valid_configs_give_a_model_or_a_config_error(base: str, data) -> None:
    text = base
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(text)))
        op = data.draw(st.sampled_from(["delete", "insert", "replace"]))
        span = data.draw(st.integers(1, 12))
        piece = data.draw(st.sampled_from(["{", "}", ";", '"', "#", " ", "\n", "9", "M",
                                           "volume 1 {", "on x {", "include \"*\";", "-", ":"]))
        if op == "delete":
            text = text[:pos] + text[pos + span:]
        elif op == "insert":
            text = text[:pos] + piece + text[pos:]
        else:
            text = text[:pos] + piece + text[pos + span:]
    _parse(text)


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    try:
        loads("resource r0 " + "{ x " * 5000 + "}" * 5000, "deep.conf")
    except ConfigError as e:
        assert "deep.conf:" in str(e)
