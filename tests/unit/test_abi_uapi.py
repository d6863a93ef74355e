"""The generated kernel headers and bsr.abi must agree."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from bsr import abi

ROOT = Path(__file__).resolve().parents[2]
UAPI = ROOT / "kmod/include/uapi/linux/bsr_genl.h"


def test_abi_generated_files_are_fresh() -> None:
    r = subprocess.run([sys.executable, str(ROOT / "tools/gen_abi.py"), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def enum_body(text: str, name: str) -> list[str]:
    m = re.search(r"enum " + name + r" \{(.*?)\};", text, re.S)
    assert m, name
    return [x.strip() for x in m.group(1).split(",") if x.strip()]


def test_uapi_command_numbers_match_abi() -> None:
    names = enum_body(UAPI.read_text(), "bsr_cmd")
    assert names[0] == "BSR_CMD_UNSPEC"
    for cname, num in abi.command_ids().items():
        assert names[num] == f"BSR_CMD_{cname}"


def test_uapi_attribute_numbers_match_abi() -> None:
    text = UAPI.read_text()
    top = enum_body(text, "bsr_attr")
    for attr, num in abi.top_attr_ids().items():
        assert top[num] == f"BSR_A_{attr}"
    for s in abi.STRUCTS:
        inner = enum_body(text, f"bsr_{s.name}_attr")
        for f, num in abi.field_ids(s):
            assert inner[num] == f"BSR_{s.name.upper()}_A_{f.name.upper()}"


def test_uapi_enum_values_match_abi() -> None:
    text = UAPI.read_text()
    for e in abi.ENUMS.values():
        for m in e:
            pat = rf"\bBSR_\w+_{re.escape(m.name.upper())} = (\d+),"
            vals = {int(v) for v in re.findall(pat, text)}
            assert int(m) in vals, (e.__name__, m.name)


def test_uapi_md_flags_match_abi() -> None:
    text = UAPI.read_text()
    for m in abi.MdFlag:
        assert re.search(rf"#define BSR_MDF_{m.name} 0x{int(m):X}U", text), m.name
