"""SVG snapshots of the main bsrwatch screens at 80x24 and 160x50.

Update after an intended change with ``pytest --snapshot-update``.
"""

import sys
from pathlib import Path

import pytest

from bsrwatch.settings import Settings

sys.path.insert(0, str(Path(__file__).parent))
from bsrwatch_helpers import make_app  # noqa: E402

pytestmark = pytest.mark.timeout(60)


def settle(*keys: str):
    async def run_before(pilot) -> None:
        await pilot.pause(0.1)
        assert pilot.app.overview.composed  # never snapshot an error screen
        pilot.app.refresh_view(force=True)
        if keys:
            await pilot.press(*keys)
        await pilot.pause(0.1)
        pilot.app.refresh_view(force=True)
        await pilot.pause(0.1)
    return run_before


@pytest.mark.parametrize("size", [(80, 24), (160, 50)], ids=["80x24", "160x50"])
def test_overview_during_resync(snap_compare, size):
    assert snap_compare(make_app("initial", "sync"), terminal_size=size, run_before=settle())


@pytest.mark.parametrize("size", [(80, 24), (160, 50)], ids=["80x24", "160x50"])
def test_overview_with_split_brain_and_ahead(snap_compare, size):
    app = make_app("initial", "splitbrain", "drbd9")
    assert snap_compare(app, terminal_size=size, run_before=settle())


def test_overview_ascii_light(snap_compare):
    app = make_app("initial", "ahead", settings=Settings(ascii=True, theme="light"))
    assert snap_compare(app, terminal_size=(80, 24), run_before=settle())


@pytest.mark.parametrize("size", [(80, 24), (160, 50)], ids=["80x24", "160x50"])
def test_detail_screen(snap_compare, size):
    settings = Settings(show_command="echo net { protocol C; } #")
    app = make_app("sync", settings=settings)
    assert snap_compare(app, terminal_size=size, run_before=settle("enter"))


def test_confirm_dangerous(snap_compare):
    assert snap_compare(make_app("initial"), terminal_size=(80, 24), run_before=settle("P"))


def test_help_screen(snap_compare):
    assert snap_compare(make_app("initial"), terminal_size=(80, 24), run_before=settle("?"))
