"""What the Python SDK clients (stdio_client.py, http_client.py) share: counted checks that
assert exact values, the name of the step in progress (for the message when a run times out),
and `main`, which runs a client within the time limit and fails it on any SDK warning.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Awaitable, Callable

import anyio
import mcp.types as types

TIME_LIMIT_S = int(os.environ.get("RINGMCP_PY_TIME_LIMIT", "60"))


class WarningRecorder(logging.Handler):
    """Collects WARNING+ records: the SDK logs (rather than raises) on what it cannot handle."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(f"{record.name}: {record.getMessage()}")


checks = 0
step = "starting"


def at(name: str) -> None:
    """Names the step in progress, for the message when the run times out."""
    global step
    step = name


def check(cond: bool, what: str, got: object = None) -> None:
    global checks
    if not cond:
        raise AssertionError(f"{what}; got: {got!r}")
    checks += 1


def eq(got: object, want: object, what: str) -> None:
    check(got == want, f"{what}: expected {want!r}", got)


def only_text(result: types.CallToolResult, what: str) -> str:
    eq(result.isError, False, f"{what}: isError")
    eq(len(result.content), 1, f"{what}: number of content blocks")
    block = result.content[0]
    check(isinstance(block, types.TextContent), f"{what}: content[0] is text", block)
    return block.text


async def _within_time_limit(run: Callable[[], Awaitable[None]]) -> None:
    try:
        with anyio.fail_after(TIME_LIMIT_S):
            await run()
    except TimeoutError:
        sys.exit(f"timed out after {TIME_LIMIT_S}s during step: {step}")


def main(name: str, run: Callable[[], Awaitable[None]]) -> None:
    """Runs `run` within the time limit, with every SDK warning recorded; exits non-zero on a
    failed check, a timeout or a warning, else prints how many checks `name` passed."""
    recorder = WarningRecorder()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger().addHandler(recorder)
    started = time.monotonic()
    anyio.run(_within_time_limit, run)
    if recorder.records:
        sys.exit("the MCP SDK logged warnings:\n  " + "\n  ".join(recorder.records))
    print(f"{name}: {checks} checks passed in {time.monotonic() - started:.2f}s")
