// Drives `ringmcp serve` over Streamable HTTP (and the legacy HTTP+SSE transport) with the
// official MCP TypeScript SDK client: Client + StreamableHTTPClientTransport.
//
// Run by tests/typescript_sdk.rs from the directory the SDK was installed into (target/ts-sdk);
// RINGMCP_HTTP_BASE is the server's base URL (http://127.0.0.1:PORT); RINGMCP_LIMITED_BASE, when
// set, is a server whose limits.tool_calls_per_session_per_s is 1 with a burst of 1. Every check
// asserts exact values; a failed check, an error the SDK reports, or a run past the time limit
// exits non-zero.

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import {
  CreateMessageRequestSchema,
  ErrorCode,
  LATEST_PROTOCOL_VERSION,
  McpError,
  ResourceUpdatedNotificationSchema,
  ToolListChangedNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';
import { isDeepStrictEqual, inspect } from 'node:util';

const TIME_LIMIT_MS = Number(process.env.RINGMCP_TS_TIME_LIMIT_MS ?? 60000);
const SAMPLED_TEXT = 'forty-two, said the typescript callback';
// How many times a subscription check increments the counter while the SDK's GET stream is
// still being opened (each attempt waits UPDATE_WAIT_MS for the notification).
const UPDATE_ATTEMPTS = 20;
const UPDATE_WAIT_MS = 500;

// The SDK (1.x) dispatches notifications a microtask after the response that arrives in the
// same read, so the progress notification a tool sends just before its result may find the
// handler already retired ("unknown token", reported to onerror, the value lost):
// https://github.com/modelcontextprotocol/typescript-sdk/issues/2580. The checks accept
// losing that one last notification, and nothing else.
const LATE_PROGRESS = 'Received a progress notification for an unknown token';

let checks = 0;
let step = 'starting';
const transportErrors = [];

const timer = setTimeout(() => {
  console.error(`timed out after ${TIME_LIMIT_MS} ms during step: ${step}`);
  process.exit(2);
}, TIME_LIMIT_MS);

function at(name) {
  step = name;
}

function check(cond, what, got) {
  if (!cond) {
    throw new Error(`${what}; got: ${inspect(got, { depth: 6 })}`);
  }
  checks += 1;
}

function eq(got, want, what) {
  check(isDeepStrictEqual(got, want), `${what}: expected ${inspect(want, { depth: 6 })}`, got);
}

/** Progress values 1..n, in order; the last may be missing (see LATE_PROGRESS). */
function checkProgress(got, want, what) {
  const complete = isDeepStrictEqual(got, want);
  const lostLast = isDeepStrictEqual(got, want.slice(0, -1));
  check(complete || lostLast, `${what}: expected ${inspect(want)} (or all but the last)`, got);
}

function onlyText(result, what) {
  eq(result.isError ?? false, false, `${what}: isError`);
  eq(result.content.length, 1, `${what}: number of content blocks`);
  eq(result.content[0].type, 'text', `${what}: content[0] type`);
  return result.content[0].text;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A client that records notifications and answers sampling requests. */
function newClient(seen) {
  const client = new Client({ name: 'ringmcp-ts-tests', version: '0.0.0' }, { capabilities: { sampling: {} } });
  client.setRequestHandler(CreateMessageRequestSchema, async (request) => {
    seen.sampling.push(request.params);
    return {
      role: 'assistant',
      content: { type: 'text', text: SAMPLED_TEXT },
      model: 'typescript-sdk-model',
      stopReason: 'endTurn',
    };
  });
  client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => {
    seen.updated.push(n.params.uri);
  });
  client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
    seen.listChanged += 1;
  });
  client.onerror = (e) => {
    if (!String(e).includes(LATE_PROGRESS)) transportErrors.push(`${step}: ${e}`);
  };
  return client;
}

async function waitFor(cond, ms) {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) return false;
    await sleep(10);
  }
  return true;
}

/** Increments demo://counter until the subscription's update arrives (the SDK opens its GET
 * stream in the background after initialize, so the first increments may come before it). */
async function expectUpdate(client, seen, what) {
  for (let i = 0; i < UPDATE_ATTEMPTS; i++) {
    const before = seen.updated.length;
    await client.callTool({ name: 'increment_counter', arguments: {} });
    if (await waitFor(() => seen.updated.length > before, UPDATE_WAIT_MS)) {
      eq(seen.updated.at(-1), 'demo://counter', `${what}: uri`);
      return;
    }
  }
  throw new Error(`${what}: no notifications/resources/updated after ${UPDATE_ATTEMPTS} increments`);
}

async function streamable(base) {
  const url = new URL(`${base}/mcp`);
  const seen = { sampling: [], updated: [], listChanged: 0 };
  const client = newClient(seen);
  const transport = new StreamableHTTPClientTransport(url);

  at('streamable http: initialize');
  await client.connect(transport);
  eq(client.getServerVersion().name, 'demo', 'serverInfo.name');
  eq(transport.protocolVersion, LATEST_PROTOCOL_VERSION, 'negotiated protocol version');
  const sessionId = transport.sessionId;
  check(typeof sessionId === 'string' && sessionId.length > 0, 'the SDK holds an Mcp-Session-Id', sessionId);
  const caps = client.getServerCapabilities();
  eq(caps.resources?.subscribe, true, 'resources.subscribe capability');
  eq(caps.tools?.listChanged, true, 'tools.listChanged capability');
  await client.ping();

  at('streamable http: tools');
  const tools = (await client.listTools()).tools.map((t) => t.name);
  for (const name of ['echo', 'add', 'long_task', 'increment_counter', 'sample']) {
    check(tools.includes(name), `tools/list has ${name}`, tools);
  }
  let r = await client.callTool({ name: 'add', arguments: { a: 2, b: 40 } });
  eq(onlyText(r, 'add'), '42', 'add text');
  eq(r.structuredContent, { sum: 42 }, 'add structuredContent');
  eq(onlyText(await client.callTool({ name: 'echo', arguments: { text: 'héllo ✓ from node' } }), 'echo'),
    'héllo ✓ from node', 'echo text');
  const progress = [];
  r = await client.callTool({ name: 'long_task', arguments: { steps: 5, interval_ms: 20 } }, undefined, {
    onprogress: (p) => progress.push([p.progress, p.total, p.message]),
  });
  eq(onlyText(r, 'long_task'), 'completed 5 steps', 'long_task text');
  checkProgress(progress, [1, 2, 3, 4, 5].map((i) => [i, 5, `step ${i} of 5`]), 'long_task progress (SSE response)');
  r = await client.callTool({ name: 'fail', arguments: {} });
  eq(r.isError, true, 'fail isError');

  at('streamable http: sampling on the POST stream');
  r = await client.callTool({ name: 'sample', arguments: { prompt: 'six times seven?', max_tokens: 11 } });
  eq(onlyText(r, 'sample'), `the model said: ${SAMPLED_TEXT}`, 'sample text');
  eq(seen.sampling.map((p) => p.maxTokens), [11], 'sampling request seen by the handler');

  at('streamable http: resources and a subscription');
  const uris = (await client.listResources()).resources.map((x) => x.uri).sort();
  eq(uris, ['demo://counter', 'demo://logo', 'demo://readme'], 'resources/list');
  const item = (await client.readResource({ uri: 'demo://items/alpha' })).contents[0];
  eq([item.mimeType, JSON.parse(item.text)], ['application/json', { id: 'alpha', name: 'item alpha' }],
    'demo://items/alpha');
  eq(await client.subscribeResource({ uri: 'demo://counter' }), {}, 'resources/subscribe');
  await expectUpdate(client, seen, 'notifications/resources/updated on the GET stream');
  await client.unsubscribeResource({ uri: 'demo://counter' });

  at('streamable http: list_changed on the GET stream');
  const before = seen.listChanged;
  const toggled = onlyText(await client.callTool({ name: 'toggle_extra_tool', arguments: {} }), 'toggle');
  check(/^extra_echo (enabled|disabled)$/.test(toggled), 'toggle text', toggled);
  check(await waitFor(() => seen.listChanged > before, 5000), 'tools/list_changed notification', seen.listChanged);

  at('streamable http: prompts');
  const prompts = (await client.listPrompts()).prompts.map((p) => p.name).sort();
  eq(prompts, ['greet', 'summarize'], 'prompts/list');
  const g = await client.getPrompt({ name: 'greet', arguments: { name: 'Linus', style: 'pirate' } });
  eq(g.messages.map((m) => [m.role, m.content.text]), [['user', 'Please greet Linus like a pirate.']], 'greet');
  try {
    await client.getPrompt({ name: 'greet', arguments: {} });
    throw new Error('greet without its required name succeeded');
  } catch (e) {
    check(e instanceof McpError && e.code === ErrorCode.InvalidParams, 'greet without its name', e);
  }

  at('streamable http: completion');
  let c = await client.complete({ ref: { type: 'ref/prompt', name: 'greet' }, argument: { name: 'name', value: 'g' } });
  eq(c.completion.values, ['Grace'], "complete greet.name 'g'");
  c = await client.complete({
    ref: { type: 'ref/resource', uri: 'demo://items/{id}' },
    argument: { name: 'id', value: 'b' },
  });
  eq(c.completion.values, ['beta'], "complete demo://items/{id} 'b'");

  at('streamable http: session termination (DELETE)');
  // terminateSession throws unless the DELETE succeeds. Ending the session also ends the GET
  // stream, and closing aborts it: the SDK reports those to onerror, and they are not ours.
  client.onerror = () => {};
  await transport.terminateSession();
  eq(transport.sessionId, undefined, 'the SDK forgets the session after terminateSession');
  await client.close();
  const after = await fetch(url, {
    method: 'POST',
    headers: {
      Accept: 'application/json, text/event-stream',
      'Content-Type': 'application/json',
      'Mcp-Session-Id': sessionId,
      'MCP-Protocol-Version': LATEST_PROTOCOL_VERSION,
    },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
  });
  await after.arrayBuffer();
  eq(after.status, 404, 'a request after the SDK ended the session');
}

async function legacy(base) {
  const seen = { sampling: [], updated: [], listChanged: 0 };
  const client = newClient(seen);
  at('legacy sse: connect and initialize');
  await client.connect(new SSEClientTransport(new URL(`${base}/mcp/demo/sse`)));
  eq(client.getServerVersion().name, 'demo', 'legacy serverInfo.name');
  const r = await client.callTool({ name: 'add', arguments: { a: 1.5, b: 2 } });
  eq(onlyText(r, 'legacy add'), '3.5', 'legacy add');
  const progress = [];
  await client.callTool({ name: 'long_task', arguments: { steps: 3, interval_ms: 10 } }, undefined, {
    onprogress: (p) => progress.push(p.progress),
  });
  checkProgress(progress, [1, 2, 3], 'legacy progress');
  await client.subscribeResource({ uri: 'demo://counter' });
  await expectUpdate(client, seen, 'legacy resources/updated');
  at('legacy sse: close');
  // Closing aborts the SDK's own event stream, which it reports as an error: not ours.
  client.onerror = () => {};
  await client.close();
}

/** A tools/call over the session's tool call rate, over Streamable HTTP: the POST is answered
 * 200 with the JSON-RPC error (and Retry-After), so the SDK raises McpError for that call only,
 * and the session goes on; after waiting data.retryAfterMs the next call passes. */
async function rateLimited(limitedBase) {
  const seen = { sampling: [], updated: [], listChanged: 0 };
  const client = newClient(seen);
  const transport = new StreamableHTTPClientTransport(new URL(`${limitedBase}/mcp/demo`));
  at('rate limit: initialize');
  await client.connect(transport);
  const sessionId = transport.sessionId;
  at('rate limit: the call the rate admits');
  eq(onlyText(await client.callTool({ name: 'echo', arguments: { text: 'first' } }), 'echo'), 'first', 'first call');
  at('rate limit: the call over the rate');
  let retryMs;
  try {
    await client.callTool({ name: 'echo', arguments: { text: 'second' } });
    throw new Error('a second tool call within the second was not refused');
  } catch (e) {
    check(e instanceof McpError, 'the refusal is an McpError', e);
    eq(e.code, -32005, 'error code');
    check(e.message.includes('rate limited') && e.message.includes('tool_calls_per_session_per_s'),
      'the reason is in the message', e.message);
    eq(e.data?.reason, 'session_tool_rate', 'data.reason');
    retryMs = e.data?.retryAfterMs;
    check(Number.isInteger(retryMs) && retryMs >= 1 && retryMs <= 1000, 'data.retryAfterMs', retryMs);
  }
  at('rate limit: other requests go on');
  await client.ping();
  at('rate limit: after waiting as told');
  await sleep(retryMs + 50);
  eq(onlyText(await client.callTool({ name: 'echo', arguments: { text: 'third' } }), 'echo'), 'third',
    'after the wait');
  eq(transport.sessionId, sessionId, 'the same session throughout');
  // Closing aborts the SDK's own GET stream, which it reports as an error: not ours.
  client.onerror = () => {};
  await client.close();
}

const base = process.env.RINGMCP_HTTP_BASE;
if (!base) {
  console.error('RINGMCP_HTTP_BASE must name the server, e.g. http://127.0.0.1:8080');
  process.exit(2);
}
const started = Date.now();
try {
  await streamable(base);
  await legacy(base);
  const limitedBase = process.env.RINGMCP_LIMITED_BASE;
  if (limitedBase) await rateLimited(limitedBase);
  eq(transportErrors, [], 'errors the SDK transports reported');
} catch (e) {
  console.error(`failed during step: ${step}\n${e?.stack ?? e}`);
  process.exit(1);
}
clearTimeout(timer);
console.log(`typescript MCP SDK http client: ${checks} checks passed in ${((Date.now() - started) / 1000).toFixed(2)}s`);
