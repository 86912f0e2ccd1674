"""Sphinx configuration of the sei documentation (built in CI with warnings as errors and its doctests run)."""

from __future__ import annotations

import doctest
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))

import sei  # noqa: E402

project = "sei"
author = "The sei developers"
copyright = "2026, the sei developers"
release = version = sei.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.doctest",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sei_docs",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "_generated", "Thumbs.db", ".DS_Store"]
templates_path = ["_templates"]
myst_enable_extensions = ["dollarmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# The Python API, generated from the docstrings: one page per module, its own members only (a package's
# re-exports are documented where they are defined).
autosummary_generate = True
autosummary_ignore_module_all = True
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": True,
                           "ignore-module-all": True}
# Lightning's hooks that the module overrides keep their own (short) docstrings, not Lightning's pages of them
autodoc_inherit_docstrings = False
autodoc_typehints = "description"
autodoc_member_order = "bysource"
autodoc_mock_imports = ["bm3d"]
add_module_names = False
# docstrings name their types in prose; these are the ones Sphinx cannot resolve from type hints
nitpicky = False

# The pages' doctest blocks run here; the docstrings' examples run in their modules' namespaces under pytest
# (--doctest-modules, part of the test command), where their names are defined.
doctest_global_setup = "import torch\nimport sei"
doctest_test_doctest_blocks = ""
doctest_default_flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

html_theme = "furo"
html_title = f"sei {release}"
html_static_path: list[str] = []
