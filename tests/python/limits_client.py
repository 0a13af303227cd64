"""A rate-limited tools/call, as the official MCP Python SDK client sees it: an McpError with
code -32005, the reason in its message and data.reason / data.retryAfterMs; once the client
waited as told, the next call succeeds.

Run by tests/python_sdk.rs against a server whose limits.tool_calls_per_session_per_s is 1
with a burst of 1: `ringmcp stdio` (RINGMCP_BIN, with RINGMCP_ARGS) and, when
RINGMCP_HTTP_BASE is set, `ringmcp serve` over Streamable HTTP (where the refused POST is
answered 200 with the JSON-RPC error and Retry-After: a 429 would fail the SDK's whole
transport) and over the legacy HTTP+SSE transport, where every answer travels on the
session's event stream.
"""

from __future__ import annotations

import os
import sys
from typing import Callable

import anyio
import mcp.types as types
from mcp import ClientSession, McpError, StdioServerParameters
from mcp.client.sse import sse_client
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

import sdk_checks
from sdk_checks import at, check, eq, only_text

RATE_LIMITED = -32005


async def rate_limited_call(
    session: ClientSession, where: str, get_session_id: Callable[[], str | None] | None = None
) -> None:
    """The refused call and the session's life after it; `get_session_id` (Streamable HTTP)
    checks that the session carried on under the same Mcp-Session-Id."""
    at(f"{where}: initialize")
    await session.initialize()
    session_id = get_session_id() if get_session_id else None
    if get_session_id:
        check(session_id is not None, f"{where}: an Mcp-Session-Id", session_id)
    at(f"{where}: the call the rate admits")
    eq(only_text(await session.call_tool("echo", {"text": "first"}), "echo"), "first", f"{where}: first call")
    at(f"{where}: the call over the rate")
    try:
        await session.call_tool("echo", {"text": "second"})
    except McpError as e:
        eq(e.error.code, RATE_LIMITED, f"{where}: error code")
        check("rate limited" in str(e) and "tool_calls_per_session_per_s" in str(e),
              f"{where}: the reason is in the message", str(e))
        data = e.error.data or {}
        eq(data.get("reason"), "session_tool_rate", f"{where}: data.reason")
        retry_ms = data.get("retryAfterMs")
        check(isinstance(retry_ms, int) and 1 <= retry_ms <= 1000, f"{where}: data.retryAfterMs", retry_ms)
    else:
        raise AssertionError(f"{where}: a second tool call within the second was not refused")
    at(f"{where}: other requests go on")
    await session.send_ping()
    at(f"{where}: after waiting as told")
    await anyio.sleep(retry_ms / 1000 + 0.05)
    eq(only_text(await session.call_tool("echo", {"text": "third"}), "echo"), "third", f"{where}: after the wait")
    if get_session_id:
        eq(get_session_id(), session_id, f"{where}: the same session throughout")


async def run() -> None:
    binary = os.environ["RINGMCP_BIN"]
    args = ["stdio", *os.environ.get("RINGMCP_ARGS", "").split()]
    async with stdio_client(StdioServerParameters(command=binary, args=args)) as (read, write):
        async with ClientSession(read, write) as session:
            await rate_limited_call(session, "stdio")
    base = os.environ.get("RINGMCP_HTTP_BASE")
    if base:
        async with streamable_http_client(f"{base}/mcp/demo") as (read, write, get_session_id):
            async with ClientSession(read, write) as session:
                await rate_limited_call(session, "streamable http", get_session_id)
        async with sse_client(f"{base}/mcp/demo/sse") as (read, write):
            async with ClientSession(read, write) as session:
                await rate_limited_call(session, "legacy sse")


def main() -> None:
    if "RINGMCP_BIN" not in os.environ:
        sys.exit("RINGMCP_BIN must name the ringmcp binary")
    sdk_checks.main("python MCP SDK client under rate limits", run)


if __name__ == "__main__":
    main()
