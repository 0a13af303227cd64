"""Drives `ringmcp serve` over Streamable HTTP (and the legacy HTTP+SSE transport) with the
official MCP Python SDK client.

Run by tests/python_sdk.rs; RINGMCP_HTTP_BASE is the server's base URL (http://127.0.0.1:PORT).
Every check asserts exact values; any failure, any SDK warning (e.g. a message the SDK could not
parse, or a session termination that did not answer 200) or a run past the time limit exits
non-zero.
"""

from __future__ import annotations

import os
import sys

import anyio
import httpx
import mcp.types as types
from mcp import ClientSession, McpError
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from pydantic import AnyUrl

import sdk_checks
from sdk_checks import at, check, eq, only_text

SAMPLED_TEXT = "forty-two, said the python callback over http"
# How many times a subscription check increments the counter while the SDK's GET stream is
# still being opened (each attempt waits UPDATE_WAIT_S for the notification).
UPDATE_ATTEMPTS = 20
UPDATE_WAIT_S = 0.5


class Observed:
    """What the server sent outside responses: notifications and server-to-client requests."""

    def __init__(self) -> None:
        self.notifications: list[types.ServerNotification] = []
        self.changed = anyio.Event()
        self.stream_errors: list[Exception] = []
        self.progress: list[tuple[float, float | None, str | None]] = []
        self.logs: list[types.LoggingMessageNotificationParams] = []
        self.sampling: list[types.CreateMessageRequestParams] = []

    async def on_message(self, message) -> None:
        if isinstance(message, Exception):
            self.stream_errors.append(message)
        elif isinstance(message, types.ServerNotification):
            self.notifications.append(message)
            self.changed.set()
            self.changed = anyio.Event()

    async def on_progress(self, value: float, total: float | None, message: str | None) -> None:
        self.progress.append((value, total, message))

    async def on_log(self, params: types.LoggingMessageNotificationParams) -> None:
        self.logs.append(params)

    async def on_sampling(self, context, params: types.CreateMessageRequestParams):
        self.sampling.append(params)
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text=SAMPLED_TEXT),
            model="python-sdk-http-model",
            stopReason="endTurn",
        )

    def methods(self) -> list[str]:
        return [n.root.method for n in self.notifications]

    def count(self, method: str, uri: str | None = None) -> int:
        return sum(
            1
            for n in self.notifications
            if n.root.method == method and (uri is None or str(n.root.params.uri) == uri)
        )

    async def wait_for(self, method: str, before: int, uri: str | None, seconds: float) -> bool:
        """Waits up to `seconds` for more than `before` notifications with `method`."""
        with anyio.move_on_after(seconds):
            while self.count(method, uri) <= before:
                await self.changed.wait()
        return self.count(method, uri) > before


def client_session(read, write, seen: Observed) -> ClientSession:
    return ClientSession(
        read,
        write,
        sampling_callback=seen.on_sampling,
        logging_callback=seen.on_log,
        message_handler=seen.on_message,
    )


async def expect_update(session: ClientSession, seen: Observed, what: str) -> None:
    """Increments demo://counter until the subscription's update arrives (the SDK opens its
    GET stream in the background after initialize, so the first increments may come before
    the stream is there to carry their notification)."""
    updated = "notifications/resources/updated"
    for _ in range(UPDATE_ATTEMPTS):
        before = seen.count(updated, "demo://counter")
        await session.call_tool("increment_counter", {})
        if await seen.wait_for(updated, before, "demo://counter", UPDATE_WAIT_S):
            check(True, what)
            return
    raise AssertionError(f"{what}: no {updated} after {UPDATE_ATTEMPTS} increments; saw {seen.methods()}")


async def streamable(base: str) -> None:
    url = f"{base}/mcp"
    seen = Observed()
    session_id: str | None = None
    async with streamable_http_client(url) as (read, write, get_session_id):
        async with client_session(read, write, seen) as session:
            at("streamable http: initialize")
            init = await session.initialize()
            eq(init.protocolVersion, types.LATEST_PROTOCOL_VERSION, "negotiated protocol version")
            eq(init.serverInfo.name, "demo", "serverInfo.name")
            check(init.capabilities.resources is not None and init.capabilities.resources.subscribe is True,
                  "resources.subscribe capability", init.capabilities)
            session_id = get_session_id()
            check(bool(session_id), "the SDK holds an Mcp-Session-Id", session_id)
            await session.send_ping()

            at("streamable http: tools")
            tools = {t.name for t in (await session.list_tools()).tools}
            check({"echo", "add", "long_task", "increment_counter", "sample"} <= tools, "tools/list", tools)
            r = await session.call_tool("add", {"a": 2, "b": 40})
            eq(only_text(r, "add"), "42", "add text")
            eq(r.structuredContent, {"sum": 42}, "add structuredContent")
            eq(only_text(await session.call_tool("echo", {"text": "héllo ✓ over http"}), "echo"),
               "héllo ✓ over http", "echo text")
            r = await session.call_tool("long_task", {"steps": 5, "interval_ms": 20},
                                        progress_callback=seen.on_progress)
            eq(only_text(r, "long_task"), "completed 5 steps", "long_task text")
            eq(seen.progress, [(float(i), 5.0, f"step {i} of 5") for i in range(1, 6)],
               "long_task progress seen by the progress callback (SSE response)")
            r = await session.call_tool("fail", {})
            eq(r.isError, True, "fail isError")

            at("streamable http: server-to-client request and logging on the POST stream")
            r = await session.call_tool("sample", {"prompt": "six times seven?", "max_tokens": 9})
            eq(only_text(r, "sample"), f"the model said: {SAMPLED_TEXT}", "sample text")
            eq([p.maxTokens for p in seen.sampling], [9], "sampling request seen by the callback")
            await session.set_logging_level("info")
            await session.call_tool("log", {"level": "warning", "message": "over http"})
            eq([(m.level, m.data) for m in seen.logs], [("warning", "over http")], "log notification")

            at("streamable http: resources and a subscription")
            uris = {str(r.uri) for r in (await session.list_resources()).resources}
            eq(uris, {"demo://counter", "demo://readme", "demo://logo"}, "resources/list")
            item = (await session.read_resource(AnyUrl("demo://items/gamma"))).contents[0]
            eq((item.mimeType, item.text), ("application/json", '{"id":"gamma","name":"item gamma"}'),
               "demo://items/gamma")
            await session.subscribe_resource(AnyUrl("demo://counter"))
            await expect_update(session, seen, "notifications/resources/updated on the GET stream")
            counter = (await session.read_resource(AnyUrl("demo://counter"))).contents[0]
            check(int(counter.text) >= 1, "demo://counter after increments", counter.text)
            await session.unsubscribe_resource(AnyUrl("demo://counter"))

            at("streamable http: list_changed on the GET stream")
            before = seen.count("notifications/tools/list_changed")
            toggled = only_text(await session.call_tool("toggle_extra_tool", {}), "toggle")
            check(toggled in ("extra_echo enabled", "extra_echo disabled"), "toggle text", toggled)
            check(await seen.wait_for("notifications/tools/list_changed", before, None, 5.0),
                  "tools/list_changed notification", seen.methods())

            at("streamable http: prompts")
            prompts = {p.name for p in (await session.list_prompts()).prompts}
            eq(prompts, {"greet", "summarize"}, "prompts/list")
            g = await session.get_prompt("greet", {"name": "Grace", "style": "formal"})
            eq([(m.role, m.content.text) for m in g.messages],
               [("user", "Please write a formal greeting for Grace.")], "greet (formal)")
            try:
                await session.get_prompt("greet", {})
            except McpError as e:
                eq(e.error.code, types.INVALID_PARAMS, "greet without its name")
            else:
                raise AssertionError("greet without its required name succeeded")

            at("streamable http: completion")
            c = await session.complete(types.PromptReference(type="ref/prompt", name="greet"),
                                       {"name": "style", "value": "p"})
            eq(c.completion.values, ["pirate"], "complete greet.style 'p'")
            c = await session.complete(types.ResourceTemplateReference(type="ref/resource", uri="demo://items/{id}"),
                                       {"name": "id", "value": "d"})
            eq(c.completion.values, ["delta"], "complete demo://items/{id} 'd'")

            eq(seen.stream_errors, [], "messages the SDK could not parse")
            at("streamable http: session termination (DELETE)")
    # Leaving streamable_http_client sent DELETE (the SDK logs a warning unless it got 200):
    # the session is gone for good.
    async with httpx.AsyncClient(timeout=10) as client:
        r = await client.post(
            url,
            headers={
                "Accept": "application/json, text/event-stream",
                "Mcp-Session-Id": session_id or "",
                "MCP-Protocol-Version": types.LATEST_PROTOCOL_VERSION,
            },
            json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
        )
        eq(r.status_code, 404, "a request after the SDK ended the session")


async def legacy(base: str) -> None:
    seen = Observed()
    session_ids: list[str] = []
    at("legacy sse: connect")
    async with sse_client(f"{base}/mcp/demo/sse", on_session_created=session_ids.append) as (read, write):
        async with client_session(read, write, seen) as session:
            at("legacy sse: initialize")
            init = await session.initialize()
            eq(init.serverInfo.name, "demo", "legacy serverInfo.name")
            eq(len(session_ids), 1, "legacy endpoint event names a session")
            r = await session.call_tool("add", {"a": 1.5, "b": 2})
            eq(only_text(r, "legacy add"), "3.5", "legacy add text")
            r = await session.call_tool("long_task", {"steps": 3, "interval_ms": 10},
                                        progress_callback=seen.on_progress)
            eq(only_text(r, "legacy long_task"), "completed 3 steps", "legacy long_task")
            eq(seen.progress, [(float(i), 3.0, f"step {i} of 3") for i in range(1, 4)], "legacy progress")
            await session.subscribe_resource(AnyUrl("demo://counter"))
            await expect_update(session, seen, "legacy resources/updated")
            g = await session.get_prompt("greet", {"name": "Ada"})
            eq(g.messages[0].content.text, "Please say hi to Ada.", "legacy greet")
            eq(seen.stream_errors, [], "legacy messages the SDK could not parse")


def main() -> None:
    base = os.environ.get("RINGMCP_HTTP_BASE")
    if not base:
        sys.exit("RINGMCP_HTTP_BASE must name the server, e.g. http://127.0.0.1:8080")

    async def run() -> None:
        await streamable(base)
        await legacy(base)

    sdk_checks.main("python MCP SDK http client", run)


if __name__ == "__main__":
    main()
