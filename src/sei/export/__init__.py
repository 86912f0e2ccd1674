"""Trained networks in other tools' formats: ``sei export``.

One module per format; each imports its format's libraries only when it writes (``sei export --help`` and
``import sei`` stay light). :data:`EXPORT_FORMATS` lists them, the command line offers them.
"""

from __future__ import annotations

__all__ = ["EXPORT_FORMATS"]

# format name -> the module under sei.export that writes it
EXPORT_FORMATS = {"bioimageio": "sei.export.bioimageio"}
