"""stocksync.logs: the format chosen as configured, the context every line carries."""

from __future__ import annotations

import io
import json
import logging

import pytest

from stocksync.config import Settings
from stocksync.logs import configure_logging, resolve_format
from stocksync.store.base import REQUEST_ID, acting_as
from tests.support.logs import captured_logs


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


log = logging.getLogger("stocksync.tests.logs")


def configured(stream: io.StringIO, log_format: str, log_level: str = "INFO") -> None:
    configure_logging(
        Settings.model_validate({"log_format": log_format, "log_level": log_level}), stream
    )


def test_configure_logging_json_writes_one_object_per_line() -> None:
    out = io.StringIO()
    configured(out, "json")
    log.info("first %s", "line")
    log.warning("second")
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["event"] == "first line"
    assert first["level"] == "info"
    assert first["logger"] == "stocksync.tests.logs"
    assert {"timestamp", "process"} <= first.keys()
    assert second["level"] == "warning"


def test_configure_logging_console_writes_lines_for_a_person() -> None:
    out = io.StringIO()
    configured(out, "console")
    log.info("hello")
    line = out.getvalue()
    assert "hello" in line
    assert "[info" in line
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


@pytest.mark.parametrize(("stream", "expected"), [(io.StringIO(), "json"), (Terminal(), "console")])
def test_resolve_format_auto_is_console_only_on_a_terminal(
    stream: io.StringIO, expected: str
) -> None:
    assert resolve_format("auto", stream) == expected
    assert resolve_format("json", Terminal()) == "json"
    assert resolve_format("console", io.StringIO()) == "console"


def test_configure_logging_applies_the_level() -> None:
    out = io.StringIO()
    configured(out, "json", "warning")
    log.info("dropped")
    log.warning("kept")
    assert [json.loads(line)["event"] for line in out.getvalue().splitlines()] == ["kept"]


def test_configure_logging_again_replaces_its_handler() -> None:
    first, second = io.StringIO(), io.StringIO()
    configured(first, "json")
    configured(second, "json")
    log.info("once")
    assert first.getvalue() == ""
    assert len(second.getvalue().splitlines()) == 1
    names = [h.get_name() for h in logging.getLogger().handlers]
    assert names.count("stocksync") == 1


def test_log_lines_carry_the_actor_and_request_id() -> None:
    with captured_logs() as logs:
        with acting_as("worker:reaper"):
            log.info("reaped")
        with acting_as("connector:square"):
            log.info("polled")
        token = REQUEST_ID.set("req-1")
        try:
            with acting_as("api:0123456789ab"):
                log.info("served")
        finally:
            REQUEST_ID.reset(token)
    reaped, polled, served = logs.lines()
    assert reaped["actor"] == "worker:reaper"
    assert reaped["worker"] == "reaper"
    assert "request_id" not in reaped
    assert polled["connector"] == "square"
    assert served["request_id"] == "req-1"
    assert served["key_id"] == "0123456789ab"


def test_log_lines_keep_only_known_extra_fields() -> None:
    with captured_logs() as logs:
        # uvicorn passes an ANSI-coloured copy of its message; a caller could pass anything
        log.info("served", extra={"route": "/v1/x", "color_message": "\x1b[1m", "body": "{}"})
    [line] = logs.lines()
    assert line["route"] == "/v1/x"
    assert "color_message" not in line
    assert "body" not in line


def test_exceptions_come_out_in_the_json_line() -> None:
    with captured_logs() as logs:
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            log.exception("failed")
    [failed] = logs.lines()
    assert failed["level"] == "error"
    assert "RuntimeError: boom" in failed["exception"]


def test_configure_logging_quiets_httpx_below_debug() -> None:
    out = io.StringIO()
    configured(out, "json")
    logging.getLogger("httpx").info("HTTP Request: GET https://example.test/v2/orders/1")
    assert out.getvalue() == ""
    configured(out, "json", "debug")
    logging.getLogger("httpx").info("HTTP Request: GET https://example.test/v2/orders/1")
    assert json.loads(out.getvalue())["logger"] == "httpx"
