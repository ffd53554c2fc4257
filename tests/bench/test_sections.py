"""The benchmark's sections and its wrk check, without starting anything."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from bench import scenarios, suite
from bench.__main__ import SECTIONS, WRK_SECTIONS, main, wrk_refusal
from bench.load import wrk_runner


def test_every_section_is_the_scenario_module_of_the_same_name() -> None:
    for section in SECTIONS:
        importlib.import_module(f"bench.scenarios.{section}")


def test_the_sections_said_to_need_wrk_are_the_ones_that_run_it() -> None:
    root = Path(scenarios.__file__).parent
    for section in SECTIONS:
        module = root / f"{section}.py"
        files = [module] if module.exists() else sorted((root / section).glob("*.py"))
        runs_wrk = any("bench.load.wrk_runner" in f.read_text() for f in files)
        assert runs_wrk == (section in WRK_SECTIONS), section


def test_without_wrk_a_run_that_needs_it_stops_before_starting_anything(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def started(*args: object) -> None:
        raise AssertionError("the suite started")

    monkeypatch.setattr(wrk_runner, "find_wrk", lambda: None)
    monkeypatch.setattr(suite, "run", started)
    assert main(["--quick", "--only", "ceiling", "--only", "hot"]) != 0
    said = capsys.readouterr().err
    assert "apt-get install wrk" in said
    assert "the hot section runs it" in said


def test_without_wrk_sections_that_do_not_run_it_may_still_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(wrk_runner, "find_wrk", lambda: None)
    assert wrk_refusal(frozenset(SECTIONS) - WRK_SECTIONS) is None
    refusal = wrk_refusal(frozenset(SECTIONS))
    assert refusal is not None
    assert "the http, ledger and hot sections run it" in refusal
    monkeypatch.setattr(wrk_runner, "find_wrk", lambda: "/usr/bin/wrk")
    assert wrk_refusal(frozenset(SECTIONS)) is None
