"""The monitoring files in deploy/: the alert rules (valid, and each alert unit-tested against
synthetic series by ``promtool test rules``), each alert annotated and explained in the
README's runbook. That every metric they read is exported is checked against a live /metrics
by tests/e2e/test_dashboard_metrics.py.

``promtool`` comes with Debian's ``prometheus`` package (``.ci/run`` installs it); without it
the promtool tests skip and say so, the others still run.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.observability import (
    ALERTS_FILE,
    ALERTS_TEST_FILE,
    alert_rules,
    readme_runbooks,
)

SEVERITIES = {"critical", "warning"}


@pytest.fixture(scope="module")
def promtool() -> str:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.skip(
            "promtool is not installed (apt-get install --no-install-recommends prometheus); "
            "the alert rules were not checked by it"
        )
    return binary


def run_promtool(promtool: str, *args: str) -> str:
    done = subprocess.run(
        [promtool, *args], capture_output=True, text=True, timeout=120, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"promtool {' '.join(args)} failed:\n{output}"
    return output


def test_promtool_checks_the_alert_rules(promtool: str) -> None:
    output = run_promtool(promtool, "check", "rules", str(ALERTS_FILE))
    assert f"SUCCESS: {len(alert_rules())} rules found" in output


def test_alert_rules_pass_their_unit_tests(promtool: str) -> None:
    output = run_promtool(promtool, "test", "rules", str(ALERTS_TEST_FILE))
    assert "SUCCESS" in output


def test_the_unit_tests_fail_on_a_broken_rule(promtool: str, tmp_path: Path) -> None:
    # An alert that can never fire must make `promtool test rules` fail, or the run above
    # proves nothing.
    spec = yaml.safe_load(ALERTS_FILE.read_text())
    spec["groups"][0]["rules"][0]["expr"] = "vector(1) > 2"
    (tmp_path / ALERTS_FILE.name).write_text(yaml.safe_dump(spec))
    shutil.copy(ALERTS_TEST_FILE, tmp_path / ALERTS_TEST_FILE.name)
    done = subprocess.run(
        [promtool, "test", "rules", str(tmp_path / ALERTS_TEST_FILE.name)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    assert spec["groups"][0]["rules"][0]["alert"] in done.stdout + done.stderr


def test_every_alert_is_unit_tested_firing_and_staying_quiet() -> None:
    spec = yaml.safe_load(ALERTS_TEST_FILE.read_text())
    assert spec["rule_files"] == [ALERTS_FILE.name]
    fires: set[str] = set()
    quiet: set[str] = set()
    for case in spec["tests"]:
        for check in case.get("alert_rule_test", []):
            (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = set(alert_rules())
    assert names - fires == set(), "alerts never shown firing"
    assert names - quiet == set(), "alerts never shown staying quiet"
    assert (fires | quiet) - names == set(), "tests of alerts that do not exist"


def test_every_alert_has_a_severity_summary_description_and_runbook() -> None:
    rules = alert_rules()
    assert len(rules) >= 12
    for name, rule in rules.items():
        assert name.startswith("Stocksync"), name
        assert rule.get("labels", {}).get("severity") in SEVERITIES, name
        annotations = rule.get("annotations", {})
        for key in ("summary", "description"):
            assert len(annotations.get(key, "").strip()) > 20, f"{name}: no useful {key}"
        assert annotations.get("runbook") == f"README.md#{name.lower()}", name


def test_every_alert_has_a_runbook_paragraph_in_the_readme() -> None:
    runbooks = readme_runbooks()
    assert set(alert_rules()) - set(runbooks) == set(), "alerts without a README runbook"
    assert set(runbooks) - set(alert_rules()) == set(), "README runbooks of no alert"
    for name, text in runbooks.items():
        for part in ("**Means.**", "**Check.**", "**Do.**"):
            assert part in text, f"the runbook of {name} has no {part}"
        assert "`" in text.partition("**Check.**")[2], f"{name}: no command to check with"
