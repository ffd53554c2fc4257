"""The benchmark's sections, without starting anything."""

from __future__ import annotations

import importlib

from bench.__main__ import SECTIONS


def test_every_section_is_the_scenario_module_of_the_same_name() -> None:
    for section in SECTIONS:
        importlib.import_module(f"bench.scenarios.{section}")
