"""The monitoring files in deploy/ as data: alert rules, the Grafana dashboard's queries, the
README's runbooks, and the metric and label names a PromQL expression uses.

PromQL has no parser in Python here; :func:`selectors` reads what the checks need from an
expression (the metric names, the labels matched on each, the labels grouped by), after
blanking string literals, range brackets and offsets, the places where a name-like word is
not a metric. tests/unit/test_observability_helpers.py holds it to examples.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
ALERTS_FILE = PROMETHEUS_DIR / "alerts.yml"
ALERTS_TEST_FILE = PROMETHEUS_DIR / "alerts_test.yml"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
GRAFANA_DIR = ROOT / "deploy" / "grafana"
DASHBOARD_FILE = GRAFANA_DIR / "dashboards" / "stocksync.json"
DATASOURCES_FILE = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDER_FILE = GRAFANA_DIR / "provisioning" / "dashboards" / "stocksync.yml"

OPERATOR_SECTION = "## Operating it"
# Series Prometheus writes itself, with the labels a query may use on them (None: any).
PROMETHEUS_SERIES: dict[str, frozenset[str] | None] = {
    "up": frozenset({"job", "instance"}),
    "ALERTS": None,  # an alert's own labels
}
TARGET_LABELS = frozenset({"job", "instance"})  # added to every scraped series
# Grafana's interval variables, replaced by a duration so promtool can parse a panel's query.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "6h"}

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_IDENT = re.compile(r"(?<![\w.$])([A-Za-z_:][A-Za-z0-9_:]*)")
_CLAUSE = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless"}
    | {"offset", "bool", "inf", "nan"}
)


@dataclass
class Selectors:
    """What one PromQL expression reads: metric -> labels matched on it, and grouping labels."""

    metrics: dict[str, set[str]] = field(default_factory=dict)
    grouping: set[str] = field(default_factory=set)


def selectors(expr: str) -> Selectors:
    """The metric names of ``expr`` with the labels matched on each, and its grouping labels."""
    text = _STRING.sub('""', expr)
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries: [5m], [1h:1m]
    text = re.sub(r"\boffset\s+-?\w+", " ", text)
    found = Selectors()
    for match in _CLAUSE.finditer(text):
        found.grouping |= {label.strip() for label in match.group(2).split(",") if label.strip()}
    text = _CLAUSE.sub(" ", text)
    position = 0
    while match := _IDENT.search(text, position):
        name, position = match.group(1), match.end()
        rest = text[position:].lstrip()
        if rest.startswith("(") or name.lower() in _KEYWORDS:
            continue  # a function, an aggregation or an operator
        labels = found.metrics.setdefault(name, set())
        if rest.startswith("{"):
            body = rest[1 : rest.index("}")]
            labels |= set(re.findall(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)", body))
            position = text.index("}", position) + 1
    # A matcher block with no metric name before it ({__name__=~"..."}) names its metrics in
    # a way this reader cannot check: refuse it rather than pass it.
    if "{" in re.sub(r"[A-Za-z_:][\w:]*\s*\{[^}]*\}", " ", text):
        raise ValueError(f"a selector without a metric name in {expr!r}")
    return found


@dataclass(frozen=True)
class Exported:
    """What a /metrics exposition offers: series names and the label names of each."""

    labels: dict[str, frozenset[str]]

    @classmethod
    def parse(cls, *expositions: str) -> Exported:
        labels: dict[str, set[str]] = {}
        for text in expositions:
            for family in text_string_to_metric_families(text):
                for name in _series_names(family.name, family.type):
                    labels.setdefault(name, set())
                for sample in family.samples:
                    labels.setdefault(sample.name, set()).update(sample.labels)
        return cls({name: frozenset(found) for name, found in labels.items()})


def _series_names(family: str, kind: str) -> set[str]:
    """The series a family of this type exposes, samples or not (a labelled family without
    children shows only its HELP and TYPE lines)."""
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("", "_sum", "_count", "_created"),
        "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
    }.get(kind, ("",))
    return {family + suffix for suffix in suffixes}


def problems(expr: str, exported: Exported) -> list[str]:
    """What in ``expr`` the engine does not export: unknown metrics, labels no metric of the
    expression has. Empty when everything it reads exists."""
    found = selectors(expr)
    if not found.metrics:
        return [f"no metric in {expr!r}"]
    errors: list[str] = []
    available: set[str] = set(TARGET_LABELS)
    open_labels = False
    for name, matched in found.metrics.items():
        if name in PROMETHEUS_SERIES:
            known = PROMETHEUS_SERIES[name]
            if known is None:
                open_labels = True
                continue
        elif name in exported.labels:
            known = exported.labels[name] | TARGET_LABELS
        else:
            errors.append(f"{name} is not exported")
            continue
        available |= known
        errors += [f"{name} has no label {label!r}" for label in sorted(matched - known)]
    if not open_labels:
        errors += [f"no metric has the label {g!r}" for g in sorted(found.grouping - available)]
    return errors


def alert_rules() -> dict[str, dict[str, Any]]:
    """Every alerting rule of alerts.yml by name."""
    spec = yaml.safe_load(ALERTS_FILE.read_text())
    rules: dict[str, dict[str, Any]] = {}
    for group in spec["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                assert rule["alert"] not in rules, f"alert {rule['alert']} defined twice"
                rules[rule["alert"]] = rule
    return rules


def dashboard() -> dict[str, Any]:
    result: dict[str, Any] = json.loads(DASHBOARD_FILE.read_text())
    return result


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, including those inside collapsed rows."""
    found: list[dict[str, Any]] = []
    for panel in board.get("panels", []):
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def panel_queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL) for every query of every panel."""
    return [
        (panel["title"], target["expr"])
        for panel in panels(board)
        for target in panel.get("targets", [])
    ]


def without_grafana_variables(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def readme_runbooks() -> dict[str, str]:
    """Alert name -> its runbook text: the ``#### Name`` headings of the README's operator
    section, each with the text up to the next heading."""
    text = README.read_text()
    start = text.index(f"\n{OPERATOR_SECTION}")
    end = text.find("\n## ", start + 1)
    section = text[start : end if end != -1 else len(text)]
    runbooks: dict[str, str] = {}
    parts = re.split(r"^#### (\S+)\s*$", section, flags=re.MULTILINE)
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        runbooks[name] = re.split(r"^#{1,4} ", body, maxsplit=1, flags=re.MULTILINE)[0].strip()
    return runbooks
