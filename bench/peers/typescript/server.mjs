// The benchmark's TypeScript peer: the official MCP TypeScript SDK (npm
// `@modelcontextprotocol/sdk`) serving one tool, `echo`, with the same contract as ringmcp's
// demo `echo`, over Streamable HTTP at /mcp, on express as the SDK's own examples mount it
// (`createMcpExpressApp`, which also validates the Host header on loopback).
//
//   node server.mjs [--port 8093] [--host 127.0.0.1] [--stateless]
//
// Default: stateful sessions (Mcp-Session-Id), one McpServer and one
// StreamableHTTPServerTransport per session (the SDK's design), JSON responses
// (enableJsonResponse), as in the SDK's jsonResponseStreamableHttp example minus its
// per-request console logging, its idle timer and its 1,000-session cap (ringmcp's only cap is
// the process's open-file limit), and with idle keep-alive connections held for 300 s (Node's
// default is 5 s) like ringmcp. --stateless: a server and transport per request
// (sessionIdGenerator undefined), as in the SDK's simpleStatelessStreamableHttp example.
// One process, one event loop. Runs until SIGINT or SIGTERM.

import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { createMcpExpressApp } from '@modelcontextprotocol/sdk/server/express.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import * as z from 'zod/v4';

/** How long an idle keep-alive connection stays open: ringmcp's limits.idle_timeout_ms. */
const IDLE_TIMEOUT_MS = 300_000;

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: '8093' },
    host: { type: 'string', default: '127.0.0.1' },
    stateless: { type: 'boolean', default: false },
  },
});
const port = Number.parseInt(args.port, 10);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`typescript-sdk-echo: bad --port ${args.port}`);
  process.exit(2);
}

/** The SDK's version, reported as serverInfo.version (as the Python SDK reports its own). */
const SDK_VERSION = (() => {
  try {
    const url = new URL('./node_modules/@modelcontextprotocol/sdk/package.json', import.meta.url);
    return JSON.parse(readFileSync(url, 'utf8')).version;
  } catch {
    return 'unknown';
  }
})();

function newServer() {
  const server = new McpServer({ name: 'typescript-sdk-echo', version: SDK_VERSION });
  server.registerTool(
    'echo',
    {
      description: 'Returns the text it is given.',
      inputSchema: { text: z.string().describe('Text to echo') },
      annotations: { readOnlyHint: true, idempotentHint: true, openWorldHint: false },
    },
    async ({ text }) => ({ content: [{ type: 'text', text }] }),
  );
  return server;
}

function jsonRpcError(res, status, code, message) {
  res.status(status).json({ jsonrpc: '2.0', error: { code, message }, id: null });
}

function internalError(res, error) {
  console.error('typescript-sdk-echo: error handling an MCP request:', error);
  if (!res.headersSent) {
    jsonRpcError(res, 500, -32603, 'Internal server error');
  }
}

const app = createMcpExpressApp({ host: args.host });

if (args.stateless) {
  app.post('/mcp', async (req, res) => {
    const server = newServer();
    try {
      const transport = new StreamableHTTPServerTransport({
        sessionIdGenerator: undefined,
        enableJsonResponse: true,
      });
      res.on('close', () => {
        transport.close();
        server.close();
      });
      await server.connect(transport);
      await transport.handleRequest(req, res, req.body);
    } catch (error) {
      internalError(res, error);
    }
  });
  const notAllowed = (_req, res) => {
    res.status(405).set('Allow', 'POST');
    jsonRpcError(res, 405, -32000, 'Method not allowed.');
  };
  app.get('/mcp', notAllowed);
  app.delete('/mcp', notAllowed);
} else {
  /** Session id -> its transport. */
  const sessions = new Map();

  app.post('/mcp', async (req, res) => {
    try {
      const sessionId = req.headers['mcp-session-id'];
      const transport = sessionId ? sessions.get(sessionId) : undefined;
      if (transport) {
        await transport.handleRequest(req, res, req.body);
      } else if (!sessionId && isInitializeRequest(req.body)) {
        const fresh = new StreamableHTTPServerTransport({
          sessionIdGenerator: () => randomUUID(),
          enableJsonResponse: true,
          // Registered before the response goes out, so the client's next request finds it.
          onsessioninitialized: (id) => {
            sessions.set(id, fresh);
          },
        });
        fresh.onclose = () => {
          if (fresh.sessionId) {
            sessions.delete(fresh.sessionId);
          }
        };
        await newServer().connect(fresh);
        await fresh.handleRequest(req, res, req.body);
      } else if (sessionId) {
        jsonRpcError(res, 404, -32001, 'Session not found');
      } else {
        jsonRpcError(res, 400, -32000, 'Bad Request: No valid session ID provided');
      }
    } catch (error) {
      internalError(res, error);
    }
  });

  // GET (the standalone SSE stream) and DELETE (end the session) go to the session's transport.
  const sessionRequest = async (req, res) => {
    try {
      const sessionId = req.headers['mcp-session-id'];
      const transport = sessionId ? sessions.get(sessionId) : undefined;
      if (!transport) {
        jsonRpcError(res, sessionId ? 404 : 400, -32000, 'Invalid or missing session ID');
        return;
      }
      await transport.handleRequest(req, res);
    } catch (error) {
      internalError(res, error);
    }
  };
  app.get('/mcp', sessionRequest);
  app.delete('/mcp', sessionRequest);
}

const httpServer = app.listen(port, args.host, (error) => {
  if (error) {
    console.error('typescript-sdk-echo: cannot listen:', error);
    process.exit(1);
  }
  const mode = args.stateless ? 'stateless' : 'stateful sessions';
  console.log(
    `typescript-sdk-echo: http://${args.host}:${port}/mcp (${mode}, JSON responses, SDK ${SDK_VERSION}, node ${process.version})`,
  );
});

// Node closes a keep-alive connection after 5 idle seconds by default; ringmcp keeps one for
// limits.idle_timeout_ms (300 s), and the `hold` scenario holds idle connections.
httpServer.keepAliveTimeout = IDLE_TIMEOUT_MS;

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    httpServer.close();
    process.exit(0);
  });
}
