"""The monitoring files in deploy/: the Prometheus config and alert rules (valid, and each
alert unit-tested against synthetic series by ``promtool test rules``), each alert annotated
and explained in the README's runbook, and the Grafana dashboard (its queries valid PromQL,
its panels titled as questions, its datasource the provisioned one). That every metric they
read is exported is checked against a live /metrics by tests/e2e/test_dashboard_metrics.py.

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
    DASHBOARD_PROVIDER_FILE,
    DATASOURCES_FILE,
    PROMETHEUS_CONFIG,
    alert_rules,
    dashboard,
    panel_queries,
    panels,
    readme_runbooks,
    without_grafana_variables,
)

SEVERITIES = {"critical", "warning"}
GRID_COLUMNS = 24


@pytest.fixture(scope="module")
def promtool() -> str:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.skip(
            "promtool is not installed (apt-get install --no-install-recommends prometheus); "
            "the alert rules and the dashboard's queries were not checked by it"
        )
    return binary


def run_promtool(promtool: str, *args: str) -> str:
    done = subprocess.run(
        [promtool, *args], capture_output=True, text=True, timeout=120, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"promtool {' '.join(args)} failed:\n{output}"
    return output


# -- Prometheus ------------------------------------------------------------------------------


def test_promtool_checks_the_alert_rules(promtool: str) -> None:
    output = run_promtool(promtool, "check", "rules", str(ALERTS_FILE))
    assert f"SUCCESS: {len(alert_rules())} rules found" in output


def test_promtool_checks_the_prometheus_config_and_its_rule_files(promtool: str) -> None:
    output = run_promtool(promtool, "check", "config", str(PROMETHEUS_CONFIG))
    assert "SUCCESS: 1 rule files found" in output


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


# -- Grafana ---------------------------------------------------------------------------------


def test_dashboard_queries_are_valid_promql(promtool: str, tmp_path: Path) -> None:
    # promtool parses PromQL only in rule files: each query becomes a recording rule.
    queries = panel_queries(dashboard())
    rules = [
        {"record": f"dashboard:query_{i}", "expr": without_grafana_variables(expr)}
        for i, (_, expr) in enumerate(queries)
    ]
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    output = run_promtool(promtool, "check", "rules", str(path))
    assert f"SUCCESS: {len(queries)} rules found" in output


def test_dashboard_panels_are_questions_on_the_provisioned_datasource() -> None:
    board = dashboard()
    datasource = yaml.safe_load(DATASOURCES_FILE.read_text())["datasources"][0]
    assert datasource["type"] == "prometheus"
    ids = [panel["id"] for panel in panels(board)]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in panels(board):
        if panel["type"] in ("row", "text"):
            continue
        assert panel["title"].endswith("?"), f"{panel['title']!r} is not a question"
        assert panel.get("description"), f"{panel['title']!r} has no description"
        assert panel["targets"], f"{panel['title']!r} queries nothing"
        for source in (panel["datasource"], *(t["datasource"] for t in panel["targets"])):
            assert source == {"type": "prometheus", "uid": datasource["uid"]}, panel["title"]


def test_dashboard_panels_fit_the_grid_without_overlapping() -> None:
    taken: set[tuple[int, int]] = set()
    for panel in panels(dashboard()):
        pos = panel["gridPos"]
        assert pos["x"] >= 0, panel["title"]
        assert pos["x"] + pos["w"] <= GRID_COLUMNS, panel["title"]
        cells = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not cells & taken, f"{panel['title']!r} overlaps another panel"
        taken |= cells


def test_dashboard_notes_what_has_no_metric_yet() -> None:
    notes = [p["options"]["content"] for p in panels(dashboard()) if p["type"] == "text"]
    assert any("stocksync_propagation_seconds" in note for note in notes)
    assert any("Redis memory per position" in note for note in notes)
    queried = " ".join(expr for _, expr in panel_queries(dashboard()))
    assert "propagation" not in queried


def test_grafana_loads_dashboards_from_one_folder() -> None:
    provider = yaml.safe_load(DASHBOARD_PROVIDER_FILE.read_text())["providers"][0]
    assert provider["type"] == "file"
    assert provider["options"]["path"].startswith("/")
