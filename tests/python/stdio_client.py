"""Drives `ringmcp stdio` (the demo server) with the official MCP Python SDK client.

Run by tests/python_sdk.rs; RINGMCP_BIN names the ringmcp binary. Every check asserts exact
values; any failure, any SDK warning (e.g. a server message the SDK could not parse) or a run
longer than the time limit exits non-zero.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time

import mcp.types as types
from mcp import ClientSession, McpError, StdioServerParameters
from mcp.client.stdio import PROCESS_TERMINATION_TIMEOUT, stdio_client
from pydantic import AnyUrl

import sdk_checks
from sdk_checks import at, check, eq, only_text

README = (
    "ringmcp demo server: tools echo, add, sleep_ms, long_task, increment_counter; "
    "resource demo://counter; template demo://items/{id}; prompts greet, summarize."
)
PNG_1X1 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)
WAV_EMPTY = "UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YQAAAAA="
DEMO_TOOLS = {
    "echo",
    "add",
    "sleep_ms",
    "compute",
    "long_task",
    "increment_counter",
    "toggle_extra_tool",
    "log",
    "content_kinds",
    "fail",
    "panic",
    "sample",
    "elicit_name",
    "list_roots",
}
SAMPLED_TEXT = "forty-two, said the python callback"


async def run(binary: str) -> None:
    progress: list[tuple[float, float | None, str | None]] = []
    log_messages: list[types.LoggingMessageNotificationParams] = []
    sampling_requests: list[types.CreateMessageRequestParams] = []
    notifications: list[str] = []
    stream_errors: list[Exception] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total, message))

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        log_messages.append(params)

    async def on_sampling(context, params: types.CreateMessageRequestParams):
        sampling_requests.append(params)
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text=SAMPLED_TEXT),
            model="python-sdk-test-model",
            stopReason="endTurn",
        )

    async def on_elicit(context, params: types.ElicitRequestParams):
        eq(params.message, "What is your name?", "elicitation message")
        return types.ElicitResult(action="accept", content={"name": "Grace"})

    async def on_list_roots(context):
        return types.ListRootsResult(
            roots=[
                types.Root(uri=AnyUrl("file:///tmp/one"), name="one"),
                types.Root(uri=AnyUrl("file:///tmp/two"), name="two"),
            ]
        )

    async def on_message(message) -> None:
        if isinstance(message, Exception):
            stream_errors.append(message)
        elif isinstance(message, types.ServerNotification):
            notifications.append(message.root.method)

    params = StdioServerParameters(command=binary, args=["stdio"])
    async with stdio_client(params) as (read, write):
        async with ClientSession(
            read,
            write,
            sampling_callback=on_sampling,
            elicitation_callback=on_elicit,
            list_roots_callback=on_list_roots,
            logging_callback=on_log,
            message_handler=on_message,
        ) as session:
            # --- initialize -------------------------------------------------------------
            at("initialize")
            init = await session.initialize()
            eq(init.protocolVersion, types.LATEST_PROTOCOL_VERSION, "negotiated protocol version")
            eq(init.serverInfo.name, "demo", "serverInfo.name")
            eq(init.serverInfo.title, "ringmcp demo server", "serverInfo.title")
            check(bool(init.serverInfo.version), "serverInfo.version is set", init.serverInfo)
            check(init.instructions is not None and "long_task" in init.instructions, "instructions", init.instructions)
            caps = init.capabilities
            check(caps.tools is not None and caps.tools.listChanged is True, "tools capability", caps.tools)
            check(
                caps.resources is not None and caps.resources.subscribe is True and caps.resources.listChanged is True,
                "resources capability",
                caps.resources,
            )
            check(caps.prompts is not None and caps.prompts.listChanged is True, "prompts capability", caps.prompts)
            check(caps.logging is not None, "logging capability", caps)
            check(caps.completions is not None, "completions capability", caps)
            await session.send_ping()

            # --- tools ------------------------------------------------------------------
            at("tools")
            tools = {t.name: t for t in (await session.list_tools()).tools}
            eq(set(tools), DEMO_TOOLS, "tools/list names")
            eq(tools["echo"].inputSchema["required"], ["text"], "echo inputSchema.required")
            eq(tools["echo"].annotations.readOnlyHint, True, "echo annotations.readOnlyHint")
            eq(tools["add"].title, "Add two numbers", "add title")
            eq(
                tools["add"].outputSchema,
                {"type": "object", "properties": {"sum": {"type": "number"}}, "required": ["sum"]},
                "add outputSchema",
            )

            eq(only_text(await session.call_tool("echo", {"text": "héllo ✓ from python"}), "echo"),
               "héllo ✓ from python", "echo text")

            r = await session.call_tool("add", {"a": 2, "b": 3.5})
            eq(only_text(r, "add"), "5.5", "add 2 + 3.5 text")
            eq(r.structuredContent, {"sum": 5.5}, "add 2 + 3.5 structuredContent")
            r = await session.call_tool("add", {"a": -7, "b": 10})
            eq(only_text(r, "add"), "3", "add -7 + 10 text")
            eq(r.structuredContent, {"sum": 3}, "add -7 + 10 structuredContent")

            r = await session.call_tool("long_task", {"steps": 4, "interval_ms": 20}, progress_callback=on_progress)
            eq(only_text(r, "long_task"), "completed 4 steps", "long_task text")
            eq(
                progress,
                [(float(i), 4.0, f"step {i} of 4") for i in range(1, 5)],
                "long_task progress notifications seen by the progress callback",
            )

            r = await session.call_tool("content_kinds", {})
            eq(r.isError, False, "content_kinds isError")
            eq([c.type for c in r.content], ["text", "image", "audio", "resource", "resource_link"],
               "content_kinds block types")
            text, image, audio, embedded, link = r.content
            eq(text.text, "one of each content kind", "content_kinds text")
            eq((image.data, image.mimeType), (PNG_1X1, "image/png"), "content_kinds image")
            eq(base64.b64decode(image.data)[:8], b"\x89PNG\r\n\x1a\n", "content_kinds image is a PNG")
            eq((audio.data, audio.mimeType), (WAV_EMPTY, "audio/wav"), "content_kinds audio")
            check(isinstance(embedded.resource, types.TextResourceContents), "embedded resource is text",
                  embedded.resource)
            eq((str(embedded.resource.uri), embedded.resource.mimeType, embedded.resource.text),
               ("demo://readme", "text/plain", README), "content_kinds embedded resource")
            eq((str(link.uri), link.name, link.description, link.mimeType),
               ("demo://counter", "counter", "The demo counter", "text/plain"), "content_kinds resource link")

            r = await session.call_tool("fail", {})
            eq(r.isError, True, "fail isError")
            eq([c.text for c in r.content], ["this tool always fails"], "fail text")

            try:
                await session.call_tool("no_such_tool", {})
            except McpError as e:
                check(e.error.code in (types.INVALID_PARAMS, types.METHOD_NOT_FOUND),
                      "unknown tool is a JSON-RPC error", e.error)
            else:
                # 2025-11-25 lets a server report it as a tool error instead.
                pass

            # --- resources --------------------------------------------------------------
            at("resources")
            resources = {str(r.uri): r for r in (await session.list_resources()).resources}
            eq(set(resources), {"demo://counter", "demo://readme", "demo://logo"}, "resources/list uris")
            eq((resources["demo://counter"].name, resources["demo://counter"].mimeType), ("counter", "text/plain"),
               "counter resource")
            eq(resources["demo://logo"].mimeType, "image/png", "logo mimeType")

            async def read_text(uri: str) -> tuple[str, str | None]:
                res = await session.read_resource(AnyUrl(uri))
                eq(len(res.contents), 1, f"{uri}: number of contents")
                c = res.contents[0]
                check(isinstance(c, types.TextResourceContents), f"{uri}: text contents", c)
                eq(str(c.uri), uri, f"{uri}: contents uri")
                return c.text, c.mimeType

            eq(await read_text("demo://counter"), ("0", "text/plain"), "demo://counter before increments")
            r = await session.call_tool("increment_counter", {"by": 5})
            eq(only_text(r, "increment_counter"), "5", "increment_counter text")
            eq(r.structuredContent, {"value": 5}, "increment_counter structuredContent")
            eq(await read_text("demo://counter"), ("5", "text/plain"), "demo://counter after increment by 5")
            eq(await read_text("demo://readme"), (README, "text/plain"), "demo://readme")

            logo = (await session.read_resource(AnyUrl("demo://logo"))).contents
            check(len(logo) == 1 and isinstance(logo[0], types.BlobResourceContents), "demo://logo is a blob", logo)
            eq((logo[0].blob, logo[0].mimeType), (PNG_1X1, "image/png"), "demo://logo blob")

            text, mime = await read_text("demo://items/beta")
            eq(mime, "application/json", "demo://items/beta mimeType")
            eq(json.loads(text), {"id": "beta", "name": "item beta"}, "demo://items/beta body")

            templates = (await session.list_resource_templates()).resourceTemplates
            eq([(t.uriTemplate, t.name, t.mimeType) for t in templates],
               [("demo://items/{id}", "item", "application/json")], "resources/templates/list")

            # --- prompts ----------------------------------------------------------------
            at("prompts")
            prompts = {p.name: p for p in (await session.list_prompts()).prompts}
            eq(set(prompts), {"greet", "summarize"}, "prompts/list names")
            eq([(a.name, bool(a.required)) for a in prompts["greet"].arguments],
               [("name", True), ("style", False)], "greet arguments")
            eq([(a.name, bool(a.required)) for a in prompts["summarize"].arguments],
               [("text", True)], "summarize arguments")

            g = await session.get_prompt("greet", {"name": "Ada", "style": "formal"})
            eq(g.description, "A formal greeting", "greet (formal) description")
            eq([(m.role, m.content.type, m.content.text) for m in g.messages],
               [("user", "text", "Please write a formal greeting for Ada.")], "greet (formal) messages")
            g = await session.get_prompt("greet", {"name": "Linus", "style": "pirate"})
            eq(g.messages[0].content.text, "Please greet Linus like a pirate.", "greet (pirate) text")
            try:
                await session.get_prompt("greet", {"style": "formal"})
            except McpError as e:
                eq(e.error.code, types.INVALID_PARAMS, "greet without its required name")
            else:
                raise AssertionError("greet without its required name argument succeeded")

            # --- completion -------------------------------------------------------------
            at("completion")
            c = await session.complete(types.PromptReference(type="ref/prompt", name="greet"),
                                       {"name": "style", "value": "f"})
            eq(c.completion.values, ["formal"], "complete greet.style 'f'")
            c = await session.complete(types.PromptReference(type="ref/prompt", name="greet"),
                                       {"name": "name", "value": "a"})
            eq(c.completion.values, ["Ada", "Alan"], "complete greet.name 'a'")
            c = await session.complete(types.ResourceTemplateReference(type="ref/resource", uri="demo://items/{id}"),
                                       {"name": "id", "value": "e"})
            eq(c.completion.values, ["epsilon"], "complete demo://items/{id} id 'e'")

            # --- logging ----------------------------------------------------------------
            at("logging")
            await session.set_logging_level("warning")
            eq(only_text(await session.call_tool("log", {"level": "info", "message": "filtered out"}), "log"),
               "logged", "log (info) text")
            eq(only_text(await session.call_tool("log", {"level": "error", "message": "seen by python"}), "log"),
               "logged", "log (error) text")
            eq([(m.level, m.logger, m.data) for m in log_messages], [("error", "demo", "seen by python")],
               "log messages at or above 'warning'")
            await session.set_logging_level("debug")
            await session.call_tool("log", {"level": "debug", "message": "now visible"})
            eq([(m.level, m.data) for m in log_messages[1:]], [("debug", "now visible")],
               "log messages after set_logging_level('debug')")

            # --- sampling and other server-to-client requests ---------------------------
            at("sampling and other server-to-client requests")
            r = await session.call_tool("sample", {"prompt": "What is six times seven?", "max_tokens": 17})
            eq(only_text(r, "sample"), f"the model said: {SAMPLED_TEXT}", "sample text")
            eq(len(sampling_requests), 1, "sampling callback calls")
            req = sampling_requests[0]
            eq(req.maxTokens, 17, "sampling request maxTokens")
            eq([(m.role, m.content.type, m.content.text) for m in req.messages],
               [("user", "text", "What is six times seven?")], "sampling request messages")
            check(r.structuredContent is not None, "sample structuredContent", r)
            eq((r.structuredContent["model"], r.structuredContent["role"], r.structuredContent["content"]["text"]),
               ("python-sdk-test-model", "assistant", SAMPLED_TEXT), "sample structuredContent")

            eq(only_text(await session.call_tool("elicit_name", {}), "elicit_name"), "hello, Grace", "elicit_name")
            r = await session.call_tool("list_roots", {})
            eq(only_text(r, "list_roots"), "2 roots", "list_roots text")
            eq([root["name"] for root in r.structuredContent["roots"]], ["one", "two"], "list_roots roots")

            # --- list_changed -----------------------------------------------------------
            at("list_changed")
            eq(only_text(await session.call_tool("toggle_extra_tool", {}), "toggle"), "extra_echo enabled", "toggle")
            check("notifications/tools/list_changed" in notifications, "tools/list_changed notification",
                  notifications)
            eq(set(t.name for t in (await session.list_tools()).tools), DEMO_TOOLS | {"extra_echo"},
               "tools/list after enabling extra_echo")
            eq(only_text(await session.call_tool("extra_echo", {"text": "x"}), "extra_echo"), "x", "extra_echo")

            eq(stream_errors, [], "messages the SDK could not parse")

            at("shutdown: closing stdin and waiting for the server to exit")
        closing = time.monotonic()
    # stdio_client closes the server's stdin, waits up to PROCESS_TERMINATION_TIMEOUT for it to
    # exit, then kills it: a quicker return means the server exited on its own when stdin closed.
    elapsed = time.monotonic() - closing
    check(elapsed < PROCESS_TERMINATION_TIMEOUT,
          f"server exits by itself within {PROCESS_TERMINATION_TIMEOUT}s of stdin closing", elapsed)


def main() -> None:
    binary = os.environ.get("RINGMCP_BIN")
    if not binary:
        sys.exit("RINGMCP_BIN must name the ringmcp binary")
    sdk_checks.main("python MCP SDK client", lambda: run(binary))


if __name__ == "__main__":
    main()
