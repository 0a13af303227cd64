"""The benchmark's Python peer: the official MCP Python SDK (PyPI `mcp`, FastMCP) serving one
tool, `echo`, with the same contract as ringmcp's demo `echo`, over Streamable HTTP at /mcp.

    python server.py [--port 8092] [--host 127.0.0.1] [--stateless]

Default: stateful sessions (Mcp-Session-Id) with JSON responses (json_response=True), like
ringmcp. --stateless: FastMCP's stateless_http mode (no session id), still JSON responses.

FastMCP's own `run("streamable-http")` starts uvicorn inside `anyio.run`, on the stock asyncio
loop. This script mounts the same app (`streamable_http_app()`, FastMCP's documented way to
serve it from an ASGI server) with `uvicorn.run`, which picks uvloop and httptools when they
are installed (requirements.txt pins both): the Python SDK at its fastest. One process, one
event loop: sessions live in its memory, so uvicorn workers cannot share them.

Request logging is off (log level WARNING, no access log): the benchmark measures the SDK,
not its logger. The session cap (10,000 by default) is lifted, as ringmcp's only cap is the
process's open-file limit, and idle keep-alive connections stay open for 300 s (uvicorn's
default is 5 s) like ringmcp's. Runs until SIGINT or SIGTERM.
"""

import argparse
import sys
from typing import Annotated

import uvicorn
from mcp.server.fastmcp import FastMCP
from mcp.types import ToolAnnotations
from pydantic import Field

# How long an idle keep-alive connection stays open: ringmcp's limits.idle_timeout_ms.
IDLE_TIMEOUT_SECS = 300


def build(host: str, port: int, stateless: bool) -> FastMCP:
    mcp = FastMCP(
        "python-sdk-echo",
        host=host,
        port=port,
        json_response=True,
        stateless_http=stateless,
        log_level="WARNING",
        max_sessions=None,
    )

    @mcp.tool(
        description="Returns the text it is given.",
        annotations=ToolAnnotations(readOnlyHint=True, idempotentHint=True, openWorldHint=False),
        # ringmcp's echo has no output schema: one text block, no structuredContent.
        structured_output=False,
    )
    def echo(text: Annotated[str, Field(description="Text to echo")]) -> str:
        return text

    return mcp


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8092)
    parser.add_argument("--stateless", action="store_true")
    args = parser.parse_args()

    mcp = build(args.host, args.port, args.stateless)
    mode = "stateless" if args.stateless else "stateful sessions"
    print(
        f"python-sdk-echo: http://{args.host}:{args.port}/mcp ({mode}, JSON responses, "
        f"python {sys.version.split()[0]})",
        flush=True,
    )
    uvicorn.run(
        mcp.streamable_http_app(),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        loop="auto",
        http="auto",
        # uvicorn closes an idle keep-alive connection after 5 s by default; ringmcp keeps one
        # for limits.idle_timeout_ms (300 s), and the `hold` scenario holds idle connections.
        timeout_keep_alive=IDLE_TIMEOUT_SECS,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
