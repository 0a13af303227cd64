//! The `demo` server: echo, add, a non-blocking sleep, a CPU-bound `compute`, a long task with progress that honours
//! cancellation, the `demo://counter` resource with a tool that increments it and notifies
//! subscribers on every shard, a resource template, prompts with arguments and completions,
//! server-to-client requests (sampling, elicitation, roots), every content kind, and a tool
//! that appears and disappears (list_changed).

use crate::jsonrpc::ErrorObject;
use crate::server::{
    arg_f64, arg_str, Content, LogLevel, McpServer, Prompt, PromptOutput, Resource,
    ResourceContents, ResourceTemplate, ServerFactory, Tool, ToolOutput,
};
use futures_lite::FutureExt;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// URI of the counter resource.
pub const COUNTER_URI: &str = "demo://counter";
/// Longest `sleep_ms` accepts.
pub const SLEEP_MS_MAX: u64 = 600_000;
/// Longest `compute` runs (microseconds): a handler holds its shard for that long.
pub const COMPUTE_US_MAX: u64 = 1_000;
/// Most steps `long_task` accepts.
pub const LONG_TASK_STEPS_MAX: u64 = 10_000;

/// Item ids served by the `demo://items/{id}` template.
const ITEM_IDS: &[&str] = &["alpha", "beta", "gamma", "delta", "epsilon"];

/// 1x1 transparent PNG.
const PNG_1X1: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=";
/// A 44-byte WAV header with no samples.
const WAV_EMPTY: &str = "UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YQAAAAA=";

/// State every shard's copy of the demo server shares: application state, not host state.
#[derive(Default)]
struct Shared {
    counter: AtomicU64,
    extra_tool: AtomicBool,
}

/// The factory: one `Shared` for the process, one server value per shard.
pub fn factory() -> ServerFactory {
    let shared = Arc::new(Shared::default());
    Arc::new(move || build(shared.clone()))
}

/// Runs rounds of integer mixing until `spent` has passed; answers how many it ran.
fn compute_for(spent: Duration) -> u64 {
    let start = std::time::Instant::now();
    let (mut rounds, mut x) = (0u64, 0x9e37_79b9_7f4a_7c15u64);
    loop {
        for _ in 0..64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
        rounds += 64;
        if start.elapsed() >= spent {
            // Keeps the arithmetic from being optimised away.
            std::hint::black_box(x);
            return rounds;
        }
    }
}

fn build(shared: Arc<Shared>) -> McpServer {
    let s_inc = shared.clone();
    let s_read = shared.clone();
    let s_toggle = shared.clone();
    let s_visible = shared;
    McpServer::new("demo", env!("CARGO_PKG_VERSION"))
        .title("ringmcp demo server")
        .instructions("A demonstration server: try echo, add, long_task with a progress token, and subscribe to demo://counter.")
        .tool(
            Tool::new(
                "echo",
                "Returns the text it is given.",
                json!({"type":"object","properties":{"text":{"type":"string","description":"Text to echo"}},"required":["text"]}),
                |args, _ctx| async move { Ok(ToolOutput::text(arg_str(&args, "text")?)) },
            )
            .annotations(json!({"readOnlyHint": true, "idempotentHint": true, "openWorldHint": false})),
        )
        .tool(
            Tool::new(
                "add",
                "Adds two numbers; returns the sum as text and as structured content.",
                json!({"type":"object","properties":{"a":{"type":"number"},"b":{"type":"number"}},"required":["a","b"]}),
                |args, _ctx| async move {
                    let sum = arg_f64(&args, "a")? + arg_f64(&args, "b")?;
                    Ok(ToolOutput::text(format_number(sum)).with_structured(json!({"sum": sum})))
                },
            )
            .title("Add two numbers")
            .output_schema(json!({"type":"object","properties":{"sum":{"type":"number"}},"required":["sum"]}))
            .annotations(json!({"readOnlyHint": true, "idempotentHint": true})),
        )
        .tool(Tool::new(
            "sleep_ms",
            "Waits the given number of milliseconds without blocking the shard.",
            json!({"type":"object","properties":{"ms":{"type":"integer","minimum":0,"maximum":SLEEP_MS_MAX}},"required":["ms"]}),
            |args, ctx| async move {
                let ms = arg_f64(&args, "ms")? as u64;
                ctx.sleep(Duration::from_millis(ms)).await;
                Ok(ToolOutput::text(format!("slept {ms} ms")))
            },
        ))
        .tool(
            Tool::new(
                "compute",
                "Keeps the shard's CPU busy for `us` microseconds, as a CPU-bound tool would (the `bombing` benchmark's work); returns the rounds of arithmetic it did.",
                json!({"type":"object","properties":{"us":{"type":"integer","minimum":0,"maximum":COMPUTE_US_MAX}},"required":["us"]}),
                |args, _ctx| async move {
                    let us = arg_f64(&args, "us")? as u64;
                    let rounds = compute_for(Duration::from_micros(us));
                    Ok(ToolOutput::text(format!("{rounds} rounds in {us} us")))
                },
            )
            .annotations(json!({"readOnlyHint": true, "openWorldHint": false})),
        )
        .tool(Tool::new(
            "long_task",
            "Runs `steps` steps of `interval_ms` each, reporting progress; stops when cancelled.",
            json!({"type":"object","properties":{
                "steps":{"type":"integer","minimum":1,"maximum":LONG_TASK_STEPS_MAX,"default":10},
                "interval_ms":{"type":"integer","minimum":0,"maximum":10000,"default":100}}}),
            |args, ctx| async move {
                let steps = args.get("steps").and_then(Value::as_u64).unwrap_or(10);
                let interval = args.get("interval_ms").and_then(Value::as_u64).unwrap_or(100);
                for step in 1..=steps {
                    ctx.sleep(Duration::from_millis(interval)).await;
                    if ctx.is_cancelled() {
                        return Ok(ToolOutput::error(format!("cancelled after {} steps", step - 1)));
                    }
                    ctx.progress(step as f64, Some(steps as f64), Some(&format!("step {step} of {steps}")));
                }
                Ok(ToolOutput::text(format!("completed {steps} steps")))
            },
        ))
        .tool(
            Tool::new(
                "increment_counter",
                "Adds `by` (default 1) to demo://counter and notifies its subscribers.",
                json!({"type":"object","properties":{"by":{"type":"integer","minimum":0,"maximum":1000000}}}),
                move |args, ctx| {
                    let by = args.get("by").and_then(Value::as_u64).unwrap_or(1);
                    let value = s_inc.counter.fetch_add(by, Ordering::Relaxed) + by;
                    async move {
                        ctx.resource_updated(COUNTER_URI);
                        Ok(ToolOutput::text(value.to_string()).with_structured(json!({"value": value})))
                    }
                },
            )
            .output_schema(json!({"type":"object","properties":{"value":{"type":"integer"}},"required":["value"]})),
        )
        .tool(Tool::new(
            "toggle_extra_tool",
            "Adds or removes the `extra_echo` tool and sends notifications/tools/list_changed.",
            json!({"type":"object","properties":{}}),
            move |_args, ctx| {
                let now = !s_toggle.extra_tool.fetch_xor(true, Ordering::Relaxed);
                async move {
                    ctx.list_changed("tools");
                    Ok(ToolOutput::text(if now { "extra_echo enabled" } else { "extra_echo disabled" }))
                }
            },
        ))
        .tool(
            Tool::new(
                "extra_echo",
                "Like echo; listed only while enabled by toggle_extra_tool.",
                json!({"type":"object","properties":{"text":{"type":"string"}},"required":["text"]}),
                |args, _ctx| async move { Ok(ToolOutput::text(arg_str(&args, "text")?)) },
            )
            .visible_when(move || s_visible.extra_tool.load(Ordering::Relaxed)),
        )
        .tool(Tool::new(
            "log",
            "Emits a notifications/message at `level` (filtered by logging/setLevel).",
            json!({"type":"object","properties":{"level":{"type":"string","enum":["debug","info","notice","warning","error","critical","alert","emergency"]},"message":{"type":"string"}},"required":["level","message"]}),
            |args, ctx| async move {
                let level = LogLevel::parse(arg_str(&args, "level")?)
                    .ok_or_else(|| ErrorObject::invalid_params("unknown level"))?;
                ctx.log(level, Some("demo"), json!(arg_str(&args, "message")?));
                Ok(ToolOutput::text("logged"))
            },
        ))
        .tool(Tool::new(
            "content_kinds",
            "Returns one block of each content kind: text, image, audio, embedded resource, resource link.",
            json!({"type":"object","properties":{}}),
            |_args, _ctx| async move {
                Ok(ToolOutput::content(vec![
                    Content::text("one of each content kind"),
                    Content::Image { data: PNG_1X1.into(), mime_type: "image/png".into() },
                    Content::Audio { data: WAV_EMPTY.into(), mime_type: "audio/wav".into() },
                    Content::Resource(ResourceContents::text("demo://readme", "text/plain", README)),
                    Content::ResourceLink {
                        uri: COUNTER_URI.into(),
                        name: "counter".into(),
                        description: Some("The demo counter".into()),
                        mime_type: Some("text/plain".into()),
                    },
                ]))
            },
        ))
        .tool(Tool::new(
            "fail",
            "Fails as asked, to see the circuit breakers and the call timeout at work. mode \"result\" (the default): a tool result with isError: true, the tool's answer, which breakers do not count; \"error\": a JSON-RPC internal error; \"panic\": the handler panics; \"sleep\": waits `ms` (stopping early when cancelled), then answers; \"ok\": answers at once.",
            json!({"type":"object","properties":{
                "mode":{"type":"string","enum":["result","error","panic","sleep","ok"],"default":"result"},
                "ms":{"type":"integer","minimum":0,"maximum":SLEEP_MS_MAX,"default":0}}}),
            |args, ctx| async move {
                let ms = args.get("ms").and_then(Value::as_u64).unwrap_or(0);
                match args.get("mode").and_then(Value::as_str).unwrap_or("result") {
                    "error" => Err(ErrorObject::internal("the fail tool failed, as asked")),
                    "panic" if std::hint::black_box(true) => panic!("the fail tool panicked, as asked"),
                    "sleep" => {
                        let cancelled = ctx.cancelled();
                        let slept = async { ctx.sleep(Duration::from_millis(ms)).await; true }
                            .or(async { cancelled.await; false })
                            .await;
                        Ok(match slept {
                            true => ToolOutput::text(format!("slept {ms} ms")),
                            false => ToolOutput::error("cancelled while sleeping"),
                        })
                    }
                    "ok" => Ok(ToolOutput::text("did not fail, as asked")),
                    _ => Ok(ToolOutput::error("this tool always fails")),
                }
            },
        ))
        .tool(Tool::new(
            "panic",
            "Panics inside its handler: shows that a failing handler becomes a JSON-RPC internal error and the shard lives on.",
            json!({"type":"object","properties":{}}),
            |_args, _ctx| async move {
                if std::hint::black_box(true) {
                    panic!("the panic tool panicked, as asked");
                }
                Ok(ToolOutput::text("unreachable"))
            },
        ))
        .tool(Tool::new(
            "sample",
            "Asks the client's model (sampling/createMessage) to answer `prompt`.",
            json!({"type":"object","properties":{"prompt":{"type":"string"},"max_tokens":{"type":"integer","minimum":1}},"required":["prompt"]}),
            |args, ctx| async move {
                let prompt = arg_str(&args, "prompt")?;
                let max_tokens = args.get("max_tokens").and_then(Value::as_u64).unwrap_or(100);
                let answer = ctx
                    .request_client(
                        "sampling/createMessage",
                        json!({"messages":[{"role":"user","content":{"type":"text","text":prompt}}],"maxTokens":max_tokens}),
                    )
                    .await?;
                let text = answer.pointer("/content/text").and_then(Value::as_str).unwrap_or("");
                Ok(ToolOutput::text(format!("the model said: {text}")).with_structured(answer))
            },
        ))
        .tool(Tool::new(
            "elicit_name",
            "Asks the user for a name (elicitation/create).",
            json!({"type":"object","properties":{}}),
            |_args, ctx| async move {
                let answer = ctx
                    .request_client(
                        "elicitation/create",
                        json!({"message":"What is your name?","requestedSchema":{"type":"object","properties":{"name":{"type":"string"}},"required":["name"]}}),
                    )
                    .await?;
                let action = answer.get("action").and_then(Value::as_str).unwrap_or("");
                let text = match (action, answer.pointer("/content/name").and_then(Value::as_str)) {
                    ("accept", Some(name)) => format!("hello, {name}"),
                    (other, _) => format!("no name given ({other})"),
                };
                Ok(ToolOutput::text(text))
            },
        ))
        .tool(Tool::new(
            "list_roots",
            "Asks the client for its roots (roots/list).",
            json!({"type":"object","properties":{}}),
            |_args, ctx| async move {
                let answer = ctx.request_client("roots/list", json!({})).await?;
                let n = answer.get("roots").and_then(Value::as_array).map_or(0, |r| r.len());
                Ok(ToolOutput::text(format!("{n} roots")).with_structured(answer))
            },
        ))
        .resource(
            Resource::new(COUNTER_URI, "counter", "text/plain", move |uri, _ctx| {
                let value = s_read.counter.load(Ordering::Relaxed);
                async move { Ok(vec![ResourceContents::text(&uri, "text/plain", value.to_string())]) }
            })
            .description("A counter shared by every shard; subscribe to hear when it changes."),
        )
        .resource(Resource::fixed_text("demo://readme", "readme", "text/plain", README).description("What this server is."))
        .resource(Resource::new("demo://logo", "logo", "image/png", |uri, _ctx| async move {
            Ok(vec![ResourceContents::blob(&uri, "image/png", PNG_1X1)])
        }))
        .template(
            ResourceTemplate::new("demo://items/{id}", "item", "application/json", |uri, vars, _ctx| async move {
                let id = vars.get("id").cloned().unwrap_or_default();
                Ok(vec![ResourceContents::text(&uri, "application/json", json!({"id": id, "name": format!("item {id}")}).to_string())])
            })
            .description("An item by id; completion offers the known ids.")
            .completer(|arg, value, _ctx| {
                if arg != "id" {
                    return Vec::new();
                }
                ITEM_IDS.iter().filter(|i| i.starts_with(value)).map(|s| s.to_string()).collect()
            }),
        )
        .prompt(
            Prompt::new("greet", "Greets someone by name, in a style.", |args, _ctx| async move {
                let name = arg_str(&args, "name")?;
                let style = args.get("style").and_then(Value::as_str).unwrap_or("casual");
                let text = match style {
                    "formal" => format!("Please write a formal greeting for {name}."),
                    "pirate" => format!("Please greet {name} like a pirate."),
                    _ => format!("Please say hi to {name}."),
                };
                Ok(PromptOutput { description: Some(format!("A {style} greeting")), messages: vec![("user".into(), Content::text(text))] })
            })
            .argument("name", "Who to greet", true)
            .argument("style", "casual, formal or pirate", false)
            .completer(|arg, value, _ctx| match arg {
                "style" => ["casual", "formal", "pirate"].iter().filter(|s| s.starts_with(value)).map(|s| s.to_string()).collect(),
                "name" => ["Ada", "Alan", "Grace", "Linus"].iter().filter(|s| s.to_lowercase().starts_with(&value.to_lowercase())).map(|s| s.to_string()).collect(),
                _ => Vec::new(),
            }),
        )
        .prompt(
            Prompt::new("summarize", "Asks for a summary of a text, with the counter as context.", |args, _ctx| async move {
                let text = arg_str(&args, "text")?;
                Ok(PromptOutput {
                    description: None,
                    messages: vec![
                        ("user".into(), Content::text(format!("Summarize this:\n{text}"))),
                        ("user".into(), Content::Resource(ResourceContents::text("demo://readme", "text/plain", README))),
                    ],
                })
            })
            .argument("text", "The text to summarize", true),
        )
}

const README: &str = "ringmcp demo server: tools echo, add, sleep_ms, long_task, increment_counter; resource demo://counter; template demo://items/{id}; prompts greet, summarize.";

fn format_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        v.to_string()
    }
}
