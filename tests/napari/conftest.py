"""The napari plugin's tests: napari's own fixture (``make_napari_viewer``) on Qt's offscreen platform.

napari draws its canvas with OpenGL, which Qt's offscreen platform takes from an X display: pytest-xvfb starts one
(Xvfb, Debian's ``xvfb`` package) for the session. Without napari, Qt or a display the tests are skipped, saying why.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before Qt starts: no window on the screen

_REASON = ("the napari plugin's tests need napari, a Qt binding and pytest-qt (pip install 'sei[napari]' pytest-qt)")
pytest.importorskip("napari", reason=_REASON)
pytest.importorskip("qtpy", reason=_REASON)
pytest.importorskip("pytestqt", reason=_REASON)

# PyTorch's Triton before any OpenGL: loaded after Mesa's software renderer it crashes the process (sei.napari.__main__)
import sei.napari.jobs  # noqa: E402, F401


def pytest_collection_modifyitems(config, items) -> None:
    if os.environ.get("DISPLAY"):
        return
    skip = pytest.mark.skip(reason="napari's canvas needs OpenGL, which Qt's offscreen platform takes from an X "
                                   "display: install Xvfb (Debian: apt-get install xvfb) for pytest-xvfb to start one")
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(skip)


@pytest.fixture
def notifications():
    """The napari notifications shown during the test, as ``(severity, message)``."""
    from napari.utils.notifications import notification_manager

    seen: list[tuple[str, str]] = []

    def collect(event) -> None:
        notification = getattr(event, "value", event)
        seen.append((str(notification.severity), str(notification.message)))

    notification_manager.notification_ready.connect(collect)
    yield seen
    notification_manager.notification_ready.disconnect(collect)
