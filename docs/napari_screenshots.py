"""Make the screenshots of the napari page (docs/images/napari-*.png) by driving the plugin as a user would.

    xvfb-run -a python docs/napari_screenshots.py      # or plain python on a desktop; needs sei[napari]

Under Qt's offscreen platform, Qt 6 grabs the window without napari's OpenGL canvas: there, install PyQt5 beside
PyQt6 (``pip install PyQt5``; qtpy takes it first), as for the screenshots of the documentation.

The blurred sample photograph is trained on for 60 steps in the Train tab (the loss plot), then restored with the
network that ships with sei in the Restore tab, the restored layer shown beside the blurry one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import napari
from PIL import Image
from qtpy.QtWidgets import QApplication

from sei.napari.__main__ import DOCK, open_viewer

IMAGES = Path(__file__).resolve().parent / "images"
SIZE = (1500, 940)  # the window, in pixels


def wait(panel) -> None:
    """Let the viewer run until the panel's worker has ended."""
    while panel.worker is not None:
        QApplication.processEvents()
        time.sleep(0.05)
    settle(0.4)  # the last repaints


def save(viewer: napari.Viewer, name: str) -> Path:
    window = viewer.window._qt_window
    for width in (SIZE[0] + 1, SIZE[0]):  # a resize repaints the canvas, which a hidden window does not otherwise
        window.resize(width, SIZE[1])
        settle(0.5)
    IMAGES.mkdir(exist_ok=True)
    path = IMAGES / name
    Image.fromarray(viewer.screenshot(canvas_only=False, flash=False)).save(path, optimize=True)
    print(f"wrote {path}")
    return path


def settle(seconds: float = 1.0) -> None:
    """Let the viewer redraw."""
    for _ in range(int(seconds / 0.02)):
        QApplication.processEvents()
        time.sleep(0.02)


def train_tab(viewer: napari.Viewer, widget) -> None:
    """60 steps on the blurred photograph: the Train tab with its loss plot."""
    _, blurred, psf = viewer.layers
    train = widget.train
    with tempfile.TemporaryDirectory() as folder:
        os.chdir(folder)  # the run goes to runs/<layer name>, the default
        train.measurements.value, train.psf.value = [blurred], psf
        train.time.value, train.steps.value = "", 60
        train.start()
        wait(train)
        widget.setCurrentWidget(train.native)
        save(viewer, "napari-train.png")
        os.chdir(IMAGES)


def restore_tab(viewer: napari.Viewer, widget) -> None:
    """The blurred photograph restored by the network that ships with sei, beside it: the Restore tab."""
    clean, blurred, psf = viewer.layers
    restore = widget.restore
    restore.published.value = "pretrained:photos-gaussian-r2"
    restore.image.value = blurred
    restore.start()
    wait(restore)
    viewer.layers.remove(clean)
    viewer.layers.remove(psf)
    restored = viewer.layers[-1]
    restored.translate = (0, blurred.data.shape[1] + 16)  # beside the input, for the picture
    viewer.reset_view()
    widget.setCurrentWidget(restore.native)
    save(viewer, "napari-restore.png")


def main(tab: str) -> None:
    """One screenshot per process (a second one in the same process came out with a black canvas)."""
    viewer = open_viewer(make_viewer=lambda: napari.Viewer(title="napari + sei", show=False))
    _, widget = viewer.window.add_plugin_dock_widget(*DOCK)  # the dock open_viewer opened
    viewer.open_sample("sei", "blurred-photo")
    {"train": train_tab, "restore": restore_tab}[tab](viewer, widget)
    viewer.close()


if __name__ == "__main__":
    for tab in sys.argv[1:] or ["train", "restore"]:
        if len(sys.argv) > 1:
            main(tab)
        else:  # each in a process of its own
            subprocess.run([sys.executable, __file__, tab], check=True)
