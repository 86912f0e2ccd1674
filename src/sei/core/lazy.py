"""Packages whose public names load their module on first use, so that importing the package stays light."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, sources: Mapping[str, str], public: Iterable[str]
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A package's ``__getattr__`` and ``__dir__`` (PEP 562) for names that load their module on first use.

    :param package: the package's name, for the error of a missing attribute.
    :param sources: public name -> the module that defines it.
    :param public: the names ``dir()`` lists (the package's ``__all__``).

    >>> getattr_, dir_ = lazy_exports("pkg", {"sqrt": "math"}, ["sqrt"])
    >>> getattr_("sqrt")(4.0), dir_()
    (2.0, ['sqrt'])
    """
    names = sorted(public)

    def __getattr__(name: str) -> Any:
        if name in sources:
            return getattr(importlib.import_module(sources[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return list(names)

    return __getattr__, __dir__
