"""Durations the README states are the measured ones: benchmarks/demo.py records the demo's wall time in
benchmarks/results/demo.json, and the README's "It takes A-B minutes" must contain it."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_demo_duration_is_the_recorded_one():
    recorded = json.loads((ROOT / "benchmarks" / "results" / "demo.json").read_text())
    minutes = recorded["data"]["seconds_total"] / 60
    readme = (ROOT / "README.md").read_text()
    stated = re.search(r"It takes (\d+)-(\d+) minutes", readme)
    assert stated, "the README states the demo's duration as 'It takes A-B minutes'"
    low, high = int(stated.group(1)), int(stated.group(2))
    assert low <= minutes <= high, (f"README says {low}-{high} minutes; benchmarks/results/demo.json recorded "
                                    f"{minutes:.1f} minutes ({recorded['recorded']['machine']}, "
                                    f"{recorded['recorded']['cores']} cores)")


def test_no_other_stated_durations_in_the_command_line_help():
    """The commands say how long a run takes from a measured probe at run time, not from a constant in their help."""
    cli = ROOT / "src" / "sei" / "cli"
    for module in cli.glob("*.py"):
        text = module.read_text()
        assert not re.search(r"[Aa]bout \d+ min", text), f"{module.name} states a duration; print a measured one"
