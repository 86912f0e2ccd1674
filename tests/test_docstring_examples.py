"""The examples in the docstrings run, in the package as it is installed (editable or not)."""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import pkgutil

import pytest

import sei

# the napari plugin's widgets import napari, an optional extra (sei[napari])
WITHOUT = {"sei.__main__"} | (set() if importlib.util.find_spec("napari") else {"sei.napari.widgets"})
MODULES = sorted(info.name for info in pkgutil.walk_packages(sei.__path__, "sei.") if info.name not in WITHOUT)
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def examples(name: str) -> list[doctest.DocTest]:
    module = importlib.import_module(name)
    return [test for test in doctest.DocTestFinder(exclude_empty=True).find(module, name) if test.examples]


@pytest.mark.parametrize("name", MODULES)
def test_the_examples_of_a_module_run(name):
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    for test in examples(name):
        runner.run(test)
    assert runner.failures == 0, f"{runner.failures} example(s) of {name} failed (their output is above)"


def test_the_public_api_has_examples():
    # a floor, so that examples removed by accident are noticed
    assert sum(len(examples(name)) for name in MODULES) >= 24
