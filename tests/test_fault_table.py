"""The command line's fault cases (``fault_cases.CASES``, also the documentation's fault table): each gives its exit
status and one clear line, never a traceback, and keeps what it says it keeps."""

from __future__ import annotations

import re

import pytest
from fault_cases import CASES, FaultCase, run_case


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_fault_case(case: FaultCase, tmp_path):
    outcome = run_case(case, tmp_path)
    text = "\n".join(outcome.err + outcome.out)
    assert "Traceback" not in text, text
    assert outcome.exit_code == case.exit_code, text
    line = outcome.line(case.message)
    assert line is not None, f"no line matches {case.message!r}:\n{text}"
    if case.exit_code == 2:  # an error: that one line is all there is on standard error
        assert outcome.err == [line], outcome.err
    case.check(tmp_path)


def test_cases_are_named_once():
    names = [case.name for case in CASES]
    assert len(names) == len(set(names)) and all(re.fullmatch(r"[a-z0-9-]+", name) for name in names)
