"""``python -m sei.napari [FILE ...]``: napari with sei's dock widget open (and the files given), sei's libraries
loaded before the viewer draws.

Where OpenGL is Mesa's software renderer (llvmpipe: virtual machines, remote desktops, CI machines without a GPU),
loading PyTorch's Triton after napari has drawn its first canvas crashes the process (both carry an LLVM, and the one
loaded first takes the other's calls). Starting napari this way loads PyTorch, Lightning and Triton first; with a
GPU's own OpenGL driver, plain ``napari`` and Plugins > sei work as well.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["main", "open_viewer"]

DOCK = ("sei", "Scale-Equivariant Imaging")  # the plugin's name and its widget's display name (napari.yaml)


def open_viewer(paths: Sequence[str] = (), make_viewer: Callable[[], Any] | None = None) -> Any:
    """A napari viewer with sei's dock widget and the image files ``paths`` open.

    :param make_viewer: makes the viewer (default ``napari.Viewer``), called after sei's libraries are loaded.
    """
    import sei.napari.jobs  # noqa: F401 - PyTorch, Lightning and Triton before OpenGL (see the module's docstring)

    if make_viewer is None:
        import napari

        make_viewer = napari.Viewer
    viewer = make_viewer()
    viewer.window.add_plugin_dock_widget(*DOCK)
    if paths:
        viewer.open(list(paths))
    return viewer


def main(argv: Sequence[str] | None = None) -> int:
    """Open the viewer (:func:`open_viewer`) and run napari until its window is closed."""
    import napari

    open_viewer(sys.argv[1:] if argv is None else argv)
    napari.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
