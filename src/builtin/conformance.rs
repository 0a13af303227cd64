//! The `conformance` server: the fixture tools, resources, resource template, prompts and
//! completions that the official MCP conformance suite (`@modelcontextprotocol/conformance`)
//! expects of a server under test.
//!
//! Names, schemas, MIME types and texts follow the suite's scenario descriptions and its
//! reference "everything" server (0.1.16 stateful scenarios), plus the fixtures the
//! 0.2.0-alpha.12 (2026-07-28) scenarios name: diagnostic tools and the input-required
//! (SEP-2322) tools and prompt. Those ask the client through
//! [`Ctx::request_client_keyed`], which sends a request under the session revisions and
//! becomes an `input_required` result under the stateless one.
//!
//! Point the suite at this server, e.g.
//! `conformance server --url http://127.0.0.1:PORT/mcp/conformance`; over TCP/stdio it can be
//! driven by hand.

use crate::jsonrpc::ErrorObject;
use crate::server::{
    arg_str, Content, Ctx, LogLevel, McpServer, Prompt, PromptOutput, Resource, ResourceContents,
    ResourceTemplate, ServerFactory, Tool, ToolOutput,
};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Duration;

/// The server's name (also the name the host routes by).
pub const SERVER_NAME: &str = "conformance";

/// A 1×1 red PNG, base64 (the suite's reference image).
pub const TEST_IMAGE_PNG: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";

/// A well-formed 46-byte WAV, base64: PCM, mono, 8000 Hz, 16 bits, one silent sample.
/// (The suite only checks `mimeType` = `audio/wav` and that the data is valid base64; the
/// reference server's header is inconsistent, so this one is built to be a correct file.)
pub const TEST_AUDIO_WAV: &str = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YQIAAAAAAA==";

/// URI of the static text resource.
pub const STATIC_TEXT_URI: &str = "test://static-text";
/// URI of the static binary (PNG) resource.
pub const STATIC_BINARY_URI: &str = "test://static-binary";
/// URI of the resource the suite subscribes to and unsubscribes from.
pub const WATCHED_URI: &str = "test://watched-resource";
/// The resource template.
pub const TEMPLATE_URI: &str = "test://template/{id}/data";

/// JSON-RPC code of the 2026-07-28 `MissingRequiredClientCapabilityError` (not yet in
/// [`crate::jsonrpc::code`]).
pub const MISSING_REQUIRED_CLIENT_CAPABILITY: i64 = -32021;

/// The tools, in the order `tools/list` returns them (stable across calls).
pub const TOOL_NAMES: &[&str] = &[
    "test_simple_text",
    "test_image_content",
    "test_audio_content",
    "test_embedded_resource",
    "test_multiple_content_types",
    "test_tool_with_logging",
    "test_tool_with_progress",
    "test_error_handling",
    "test_reconnection",
    "test_sampling",
    "test_elicitation",
    "test_elicitation_sep1034_defaults",
    "test_elicitation_sep1330_enums",
    "json_schema_2020_12_tool",
    "test_missing_capability",
    "test_streaming_elicitation",
    "test_logging_tool",
    "test_input_required_result_elicitation",
    "test_input_required_result_sampling",
    "test_input_required_result_list_roots",
    "test_input_required_result_request_state",
    "test_input_required_result_multiple_inputs",
    "test_input_required_result_multi_round",
    "test_input_required_result_tampered_state",
    "test_input_required_result_capabilities",
    "test_trigger_tool_change",
    "test_trigger_prompt_change",
];

/// The static resources, in list order.
pub const RESOURCE_URIS: &[&str] = &[STATIC_TEXT_URI, STATIC_BINARY_URI, WATCHED_URI];

/// The prompts, in list order.
pub const PROMPT_NAMES: &[&str] = &[
    "test_simple_prompt",
    "test_prompt_with_arguments",
    "test_prompt_with_embedded_resource",
    "test_prompt_with_image",
    "test_input_required_result_prompt",
];

/// Candidate values offered by completion for the arguments of `test_prompt_with_arguments`.
const ARG_CANDIDATES: &[&str] = &["testValue1", "testValue2", "example"];
/// Candidate ids offered by completion for the template's `{id}`.
const ID_CANDIDATES: &[&str] = &["123", "456", "789"];

/// The factory: the fixtures are stateless, so every shard builds an identical server.
pub fn factory() -> ServerFactory {
    Arc::new(build)
}

fn build() -> McpServer {
    // TODO(http issue): http-custom-header-server-validation (SEP-2243) wants a tool with an
    // `x-mcp-header` string property; add one once the HTTP transport validates
    // `Mcp-Param-*` headers (listing it earlier turns "not testable" into failures).
    let tools = [
        simple_text(),
        image_content(),
        audio_content(),
        embedded_resource(),
        multiple_content_types(),
        tool_with_logging(),
        tool_with_progress(),
        error_handling(),
        reconnection(),
        sampling(),
        elicitation(),
        elicitation_sep1034_defaults(),
        elicitation_sep1330_enums(),
        json_schema_2020_12_tool(),
        missing_capability(),
        streaming_elicitation(),
        logging_tool(),
        input_required_elicitation(),
        input_required_sampling(),
        input_required_list_roots(),
        input_required_confirm("test_input_required_result_request_state"),
        input_required_multiple_inputs(),
        input_required_multi_round(),
        input_required_confirm("test_input_required_result_tampered_state"),
        input_required_capabilities(),
        trigger_list_change("test_trigger_tool_change", "tools"),
        trigger_list_change("test_trigger_prompt_change", "prompts"),
    ];
    let mut server = McpServer::new(SERVER_NAME, env!("CARGO_PKG_VERSION"))
        .title("MCP conformance fixtures")
        .instructions(
            "Fixtures for the MCP conformance suite: test_* tools, test://static-text, \
             test://static-binary, test://watched-resource, the test://template/{id}/data \
             template and test_* prompts.",
        );
    for t in tools {
        server = server.tool(t);
    }
    server
        .resource(
            Resource::fixed_text(
                STATIC_TEXT_URI,
                "static-text",
                "text/plain",
                "This is the content of the static text resource.",
            )
            .title("Static Text Resource")
            .description("A static text resource for testing"),
        )
        .resource(
            Resource::new(
                STATIC_BINARY_URI,
                "static-binary",
                "image/png",
                |uri, _ctx| async move {
                    Ok(vec![ResourceContents::blob(&uri, "image/png", TEST_IMAGE_PNG)])
                },
            )
            .title("Static Binary Resource")
            .description("A static binary resource (image) for testing"),
        )
        .resource(
            Resource::fixed_text(
                WATCHED_URI,
                "watched-resource",
                "text/plain",
                "Watched resource content",
            )
            .title("Watched Resource")
            .description("A resource to subscribe to and unsubscribe from"),
        )
        .template(
            ResourceTemplate::new(
                TEMPLATE_URI,
                "template",
                "application/json",
                |uri, vars, _ctx| async move {
                    let id = vars.get("id").cloned().unwrap_or_default();
                    let text = json!({"id": id, "templateTest": true, "data": format!("Data for ID: {id}")})
                        .to_string();
                    Ok(vec![ResourceContents::text(&uri, "application/json", text)])
                },
            )
            .description("A resource template with parameter substitution")
            .completer(|arg, value, _context| match arg {
                "id" => complete_from(ID_CANDIDATES, value),
                _ => Vec::new(),
            }),
        )
        .prompt(
            Prompt::new(
                "test_simple_prompt",
                "A simple prompt without arguments",
                |_args, _ctx| async move {
                    Ok(user_messages(vec![Content::text(
                        "This is a simple prompt for testing.",
                    )]))
                },
            )
            .title("Simple Test Prompt"),
        )
        .prompt(
            Prompt::new(
                "test_prompt_with_arguments",
                "A prompt with required arguments",
                |args, _ctx| async move {
                    let arg1 = arg_str(&args, "arg1")?;
                    let arg2 = arg_str(&args, "arg2")?;
                    Ok(user_messages(vec![Content::text(format!(
                        "Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"
                    ))]))
                },
            )
            .title("Prompt With Arguments")
            .argument("arg1", "First test argument", true)
            .argument("arg2", "Second test argument", true)
            .completer(|arg, value, _context| match arg {
                "arg1" | "arg2" => complete_from(ARG_CANDIDATES, value),
                _ => Vec::new(),
            }),
        )
        .prompt(
            Prompt::new(
                "test_prompt_with_embedded_resource",
                "A prompt that includes an embedded resource",
                |args, _ctx| async move {
                    let uri = arg_str(&args, "resourceUri")?;
                    Ok(user_messages(vec![
                        Content::Resource(ResourceContents::text(
                            uri,
                            "text/plain",
                            "Embedded resource content for testing.",
                        )),
                        Content::text("Please process the embedded resource above."),
                    ]))
                },
            )
            .title("Prompt With Embedded Resource")
            .argument("resourceUri", "URI of the resource to embed", true),
        )
        .prompt(
            Prompt::new(
                "test_prompt_with_image",
                "A prompt that includes image content",
                |_args, _ctx| async move {
                    Ok(user_messages(vec![
                        png_image(),
                        Content::text("Please analyze the image above."),
                    ]))
                },
            )
            .title("Prompt With Image"),
        )
        .prompt(
            Prompt::new(
                "test_input_required_result_prompt",
                "A prompt that asks the user for context before it renders (input required)",
                |_args, ctx| async move {
                    let answer = ctx
                        .request_client_keyed(
                            "user_context",
                            "elicitation/create",
                            form(
                                "What context should the prompt use?",
                                json!({"context": {"type": "string", "description": "Context for the prompt"}}),
                                &["context"],
                            ),
                        )
                        .await?;
                    let context = accepted_field(&answer, "context").unwrap_or("none given".into());
                    Ok(user_messages(vec![Content::text(format!(
                        "Use this context: {context}"
                    ))]))
                },
            )
            .title("Prompt Requiring Input"),
        )
}

/// The input schema of a tool without arguments.
fn no_args() -> Value {
    json!({"type": "object", "properties": {}})
}

/// The reference PNG as image content.
fn png_image() -> Content {
    Content::Image {
        data: TEST_IMAGE_PNG.into(),
        mime_type: "image/png".into(),
    }
}

/// A prompt result whose messages all come from the user.
fn user_messages(contents: Vec<Content>) -> PromptOutput {
    PromptOutput {
        description: None,
        messages: contents.into_iter().map(|c| ("user".into(), c)).collect(),
    }
}

/// The candidates that start with `value`, ignoring ASCII case.
fn complete_from(candidates: &[&str], value: &str) -> Vec<String> {
    let value = value.to_ascii_lowercase();
    candidates
        .iter()
        .filter(|c| c.to_ascii_lowercase().starts_with(&value))
        .map(|c| c.to_string())
        .collect()
}

fn simple_text() -> Tool {
    Tool::new(
        "test_simple_text",
        "Tests simple text content response",
        no_args(),
        |_args, _ctx| async move {
            Ok(ToolOutput::text(
                "This is a simple text response for testing.",
            ))
        },
    )
}

fn image_content() -> Tool {
    Tool::new(
        "test_image_content",
        "Tests image content response",
        no_args(),
        |_args, _ctx| async move { Ok(ToolOutput::content(vec![png_image()])) },
    )
}

fn audio_content() -> Tool {
    Tool::new(
        "test_audio_content",
        "Tests audio content response",
        no_args(),
        |_args, _ctx| async move {
            Ok(ToolOutput::content(vec![Content::Audio {
                data: TEST_AUDIO_WAV.into(),
                mime_type: "audio/wav".into(),
            }]))
        },
    )
}

fn embedded_resource() -> Tool {
    Tool::new(
        "test_embedded_resource",
        "Tests embedded resource content response",
        no_args(),
        |_args, _ctx| async move {
            Ok(ToolOutput::content(vec![Content::Resource(
                ResourceContents::text(
                    "test://embedded-resource",
                    "text/plain",
                    "This is an embedded resource content.",
                ),
            )]))
        },
    )
}

fn multiple_content_types() -> Tool {
    Tool::new(
        "test_multiple_content_types",
        "Tests response with multiple content types (text, image, resource)",
        no_args(),
        |_args, _ctx| async move {
            Ok(ToolOutput::content(vec![
                Content::text("Multiple content types test:"),
                png_image(),
                Content::Resource(ResourceContents::text(
                    "test://mixed-content-resource",
                    "application/json",
                    json!({"test": "data", "value": 123}).to_string(),
                )),
            ]))
        },
    )
}

fn tool_with_logging() -> Tool {
    Tool::new(
        "test_tool_with_logging",
        "Tests tool that emits log messages during execution",
        no_args(),
        |_args, ctx| async move {
            let steps = [
                "Tool execution started",
                "Tool processing data",
                "Tool execution completed",
            ];
            for (i, message) in steps.into_iter().enumerate() {
                if i > 0 {
                    ctx.sleep(Duration::from_millis(50)).await;
                }
                ctx.log(LogLevel::Info, None, json!(message));
            }
            Ok(ToolOutput::text("Tool with logging executed successfully"))
        },
    )
}

fn tool_with_progress() -> Tool {
    Tool::new(
        "test_tool_with_progress",
        "Tests tool that reports progress notifications",
        no_args(),
        |_args, ctx| async move {
            for (i, step) in [0u32, 50, 100].into_iter().enumerate() {
                if i > 0 {
                    ctx.sleep(Duration::from_millis(50)).await;
                }
                if ctx.is_cancelled() {
                    return Ok(ToolOutput::error("cancelled"));
                }
                // Echoes the request's `_meta.progressToken` verbatim (numbers stay numbers).
                ctx.progress(
                    f64::from(step),
                    Some(100.0),
                    Some(&format!("Completed step {step} of 100")),
                );
            }
            // The reference answers String(progressToken); Ctx does not expose the token,
            // and the suite does not check this text.
            Ok(ToolOutput::text(if ctx.wants_progress() {
                "Progress reported: 0, 50 and 100 of 100"
            } else {
                "Completed without a progress token"
            }))
        },
    )
}

fn error_handling() -> Tool {
    Tool::new(
        "test_error_handling",
        "Tests error response handling",
        no_args(),
        |_args, _ctx| async move {
            Ok(ToolOutput::error(
                "This tool intentionally returns an error for testing",
            ))
        },
    )
}

fn reconnection() -> Tool {
    Tool::new(
        "test_reconnection",
        "Tests SSE stream disconnection and client reconnection (SEP-1699). Server will close the stream mid-call and send the result after client reconnects.",
        no_args(),
        |_args, ctx| async move {
            // TODO(http issue): test_reconnection (pending scenario server-sse-polling) needs
            // the Streamable HTTP transport to close this request's SSE stream here (with a
            // priming event and `retry:`) and replay the result on GET with Last-Event-ID;
            // Ctx has no way to ask for that yet, so the result is simply sent.
            ctx.sleep(Duration::from_millis(100)).await;
            Ok(ToolOutput::text(
                "Reconnection test completed successfully. If you received this, the client properly reconnected after stream closure.",
            ))
        },
    )
}

/// The text of a `sampling/createMessage` answer: `content` may be one block or (2025-11-25)
/// an array of blocks.
fn sampled_text(answer: &Value) -> &str {
    let content = answer
        .get("content")
        .or_else(|| answer.pointer("/message/content"));
    let text = match content {
        Some(Value::Array(blocks)) => blocks
            .iter()
            .find(|b| b.get("type").and_then(Value::as_str) == Some("text"))
            .and_then(|b| b.get("text"))
            .and_then(Value::as_str),
        Some(block) => block.get("text").and_then(Value::as_str),
        None => None,
    };
    text.unwrap_or("No response")
}

fn sampling() -> Tool {
    Tool::new(
        "test_sampling",
        "Tests server-initiated sampling (LLM completion request)",
        json!({
            "type": "object",
            "properties": {"prompt": {"type": "string", "description": "The prompt to send to the LLM"}},
            "required": ["prompt"]
        }),
        |args, ctx| async move {
            let prompt = arg_str(&args, "prompt")?;
            let params = json!({
                "messages": [{"role": "user", "content": {"type": "text", "text": prompt}}],
                "maxTokens": 100
            });
            Ok(
                match ctx.request_client("sampling/createMessage", params).await {
                    Ok(answer) => {
                        ToolOutput::text(format!("LLM response: {}", sampled_text(&answer)))
                    }
                    Err(e) => {
                        ToolOutput::error(format!("Sampling not supported or error: {}", e.message))
                    }
                },
            )
        },
    )
}

/// Sends `elicitation/create` and reports the user's answer as `<prefix>: action=…, content=…`;
/// a failed request (no elicitation capability, client error, timeout) is a tool error.
async fn elicit(ctx: &Ctx, prefix: &str, params: Value) -> ToolOutput {
    match ctx.request_client("elicitation/create", params).await {
        Ok(answer) => {
            let action = answer
                .get("action")
                .and_then(Value::as_str)
                .unwrap_or("unknown");
            let content = answer
                .get("content")
                .filter(|c| !c.is_null())
                .cloned()
                .unwrap_or_else(|| Value::Object(Map::new()));
            ToolOutput::text(format!("{prefix}: action={action}, content={content}"))
        }
        Err(e) => ToolOutput::error(format!("Elicitation not supported or error: {}", e.message)),
    }
}

fn elicitation() -> Tool {
    Tool::new(
        "test_elicitation",
        "Tests server-initiated elicitation (user input request)",
        json!({
            "type": "object",
            "properties": {"message": {"type": "string", "description": "The message to show the user"}},
            "required": ["message"]
        }),
        |args, ctx| async move {
            let message = arg_str(&args, "message")?;
            let params = json!({
                "message": message,
                "requestedSchema": {
                    "type": "object",
                    "properties": {
                        "username": {"type": "string", "description": "User's response"},
                        "email": {"type": "string", "description": "User's email address"}
                    },
                    "required": ["username", "email"]
                }
            });
            Ok(elicit(&ctx, "User response", params).await)
        },
    )
}

fn elicitation_sep1034_defaults() -> Tool {
    Tool::new(
        "test_elicitation_sep1034_defaults",
        "Tests elicitation with default values per SEP-1034",
        no_args(),
        |_args, ctx| async move {
            let params = json!({
                "message": "Please review and update the form fields with defaults",
                "requestedSchema": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string", "description": "User name", "default": "John Doe"},
                        "age": {"type": "integer", "description": "User age", "default": 30},
                        "score": {"type": "number", "description": "User score", "default": 95.5},
                        "status": {
                            "type": "string",
                            "description": "User status",
                            "enum": ["active", "inactive", "pending"],
                            "default": "active"
                        },
                        "verified": {"type": "boolean", "description": "Verification status", "default": true}
                    },
                    "required": []
                }
            });
            Ok(elicit(&ctx, "Elicitation completed", params).await)
        },
    )
}

fn elicitation_sep1330_enums() -> Tool {
    Tool::new(
        "test_elicitation_sep1330_enums",
        "Tests elicitation with enum schema improvements per SEP-1330",
        no_args(),
        |_args, ctx| async move {
            let params = json!({
                "message": "Please select options from the enum fields",
                "requestedSchema": {
                    "type": "object",
                    "properties": {
                        "untitledSingle": {
                            "type": "string",
                            "description": "Select one option",
                            "enum": ["option1", "option2", "option3"]
                        },
                        "titledSingle": {
                            "type": "string",
                            "description": "Select one option with titles",
                            "oneOf": [
                                {"const": "value1", "title": "First Option"},
                                {"const": "value2", "title": "Second Option"},
                                {"const": "value3", "title": "Third Option"}
                            ]
                        },
                        "legacyEnum": {
                            "type": "string",
                            "description": "Select one option (legacy)",
                            "enum": ["opt1", "opt2", "opt3"],
                            "enumNames": ["Option One", "Option Two", "Option Three"]
                        },
                        "untitledMulti": {
                            "type": "array",
                            "description": "Select multiple options",
                            "minItems": 1,
                            "maxItems": 3,
                            "items": {"type": "string", "enum": ["option1", "option2", "option3"]}
                        },
                        "titledMulti": {
                            "type": "array",
                            "description": "Select multiple options with titles",
                            "minItems": 1,
                            "maxItems": 3,
                            "items": {
                                "anyOf": [
                                    {"const": "value1", "title": "First Choice"},
                                    {"const": "value2", "title": "Second Choice"},
                                    {"const": "value3", "title": "Third Choice"}
                                ]
                            }
                        }
                    },
                    "required": []
                }
            });
            Ok(elicit(&ctx, "Elicitation completed", params).await)
        },
    )
}

/// The SEP-1613/SEP-2106 input schema: `$schema`, `$defs` with `$anchor`, `$ref`,
/// `allOf`/`anyOf`, `if`/`then`/`else` and `additionalProperties: false`, which `tools/list`
/// must return unchanged.
fn json_schema_2020_12() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "$defs": {
            "address": {
                "$anchor": "addressDef",
                "type": "object",
                "properties": {"street": {"type": "string"}, "city": {"type": "string"}}
            }
        },
        "properties": {
            "name": {"type": "string"},
            "address": {"$ref": "#/$defs/address"},
            "contactMethod": {"type": "string", "enum": ["phone", "email"]},
            "phone": {"type": "string"},
            "email": {"type": "string"}
        },
        "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
        "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
        "then": {"required": ["phone"]},
        "else": {"required": ["email"]},
        "additionalProperties": false
    })
}

fn json_schema_2020_12_tool() -> Tool {
    Tool::new(
        "json_schema_2020_12_tool",
        "Tool with JSON Schema 2020-12 features for conformance testing (SEP-1613)",
        json_schema_2020_12(),
        |args, _ctx| async move {
            Ok(ToolOutput::text(format!(
                "JSON Schema 2020-12 tool called with: {}",
                Value::Object(args)
            )))
        },
    )
}

fn missing_capability() -> Tool {
    Tool::new(
        "test_missing_capability",
        "Test tool requiring sampling",
        no_args(),
        |_args, ctx| async move {
            // A protocol error (-32021 with data.requiredCapabilities as a ClientCapabilities
            // object), not a tool result: the request cannot be served without the capability.
            // The HTTP transport maps it to status 400 on the 2026-07-28 wire.
            let has_sampling = ctx
                .client_capabilities()
                .get("sampling")
                .is_some_and(Value::is_object);
            if !has_sampling {
                return Err(ErrorObject::new(
                    MISSING_REQUIRED_CLIENT_CAPABILITY,
                    "Missing required client capability: sampling",
                )
                .with_data(json!({"requiredCapabilities": {"sampling": {}}})));
            }
            Ok(ToolOutput::text("Success"))
        },
    )
}

fn streaming_elicitation() -> Tool {
    Tool::new(
        "test_streaming_elicitation",
        "Diagnostic tool validating response progress streams",
        no_args(),
        |_args, ctx| async move {
            // Streams only notifications before its result: no server-to-client request
            // (an elicitation on a stateless stream is forbidden; MRTR replaces it).
            ctx.progress(50.0, Some(100.0), Some("Streaming"));
            Ok(ToolOutput::text("Streaming complete"))
        },
    )
}

fn logging_tool() -> Tool {
    Tool::new(
        "test_logging_tool",
        "Diagnostic logging validator tool",
        no_args(),
        |_args, ctx| async move {
            // Logs through Ctx::log, which drops messages below the session's level; under
            // the stateless revision a request without `_meta[".../logLevel"]` gets none.
            ctx.log(
                LogLevel::Info,
                None,
                json!("Diagnostic trace logging activated"),
            );
            Ok(ToolOutput::text("Logging evaluated"))
        },
    )
}

/// `elicitation/create` params for a form.
fn form(message: &str, properties: Value, required: &[&str]) -> Value {
    json!({
        "message": message,
        "requestedSchema": {"type": "object", "properties": properties, "required": required}
    })
}

/// `sampling/createMessage` params for one user message.
fn sample(text: &str, max_tokens: u32) -> Value {
    json!({
        "messages": [{"role": "user", "content": {"type": "text", "text": text}}],
        "maxTokens": max_tokens
    })
}

/// A field of an accepted elicitation, as text; `None` when the user declined, cancelled or
/// left it out.
fn accepted_field(answer: &Value, field: &str) -> Option<String> {
    if answer.get("action").and_then(Value::as_str) != Some("accept") {
        return None;
    }
    match answer.get("content")?.get(field)? {
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// How many roots a `roots/list` answer names.
fn root_count(answer: &Value) -> usize {
    answer
        .get("roots")
        .and_then(Value::as_array)
        .map_or(0, Vec::len)
}

fn ask_name(ctx: &Ctx) -> impl std::future::Future<Output = Result<Value, ErrorObject>> + '_ {
    ctx.request_client_keyed(
        "user_name",
        "elicitation/create",
        form(
            "What is your name?",
            json!({"name": {"type": "string", "description": "Your name"}}),
            &["name"],
        ),
    )
}

fn input_required_elicitation() -> Tool {
    Tool::new(
        "test_input_required_result_elicitation",
        "Asks the user's name (input required: elicitation, key user_name), then greets them",
        no_args(),
        |_args, ctx| async move {
            let answer = ask_name(&ctx).await?;
            Ok(match accepted_field(&answer, "name") {
                Some(name) => ToolOutput::text(format!("Hello, {name}!")),
                None => ToolOutput::text("Hello, whoever you are (no name given)."),
            })
        },
    )
}

fn input_required_sampling() -> Tool {
    Tool::new(
        "test_input_required_result_sampling",
        "Asks the client's model a question (input required: sampling, key capital_question)",
        no_args(),
        |_args, ctx| async move {
            let answer = ctx
                .request_client_keyed(
                    "capital_question",
                    "sampling/createMessage",
                    sample("What is the capital of France?", 100),
                )
                .await?;
            Ok(ToolOutput::text(format!(
                "LLM response: {}",
                sampled_text(&answer)
            )))
        },
    )
}

fn input_required_list_roots() -> Tool {
    Tool::new(
        "test_input_required_result_list_roots",
        "Asks the client for its roots (input required: roots/list, key client_roots)",
        no_args(),
        |_args, ctx| async move {
            let answer = ctx
                .request_client_keyed("client_roots", "roots/list", json!({}))
                .await?;
            let uris: Vec<&str> = answer
                .get("roots")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(|x| x.get("uri")?.as_str()).collect())
                .unwrap_or_default();
            Ok(ToolOutput::text(format!(
                "The client has {} root(s): {}",
                uris.len(),
                uris.join(", ")
            )))
        },
    )
}

/// A tool that asks for a confirmation (key `confirm`). Under the stateless revision the
/// retry carries the `requestState` the first answer came with, which the transport
/// verifies before the tool runs again (a tampered state is refused with -32602).
fn input_required_confirm(name: &str) -> Tool {
    Tool::new(
        name,
        "Asks for a confirmation (input required: elicitation, key confirm; the retry carries requestState)",
        no_args(),
        |_args, ctx| async move {
            let answer = ctx
                .request_client_keyed(
                    "confirm",
                    "elicitation/create",
                    form(
                        "Please confirm",
                        json!({"ok": {"type": "boolean", "description": "Confirm"}}),
                        &["ok"],
                    ),
                )
                .await?;
            let ok = accepted_field(&answer, "ok").unwrap_or_else(|| "false".into());
            Ok(ToolOutput::text(format!(
                "state-ok: confirmed={ok}"
            )))
        },
    )
}

fn input_required_multiple_inputs() -> Tool {
    Tool::new(
        "test_input_required_result_multiple_inputs",
        "Asks for a name, a generated greeting and the roots at once (keys user_name, greeting, client_roots)",
        no_args(),
        |_args, ctx| async move {
            // Asked together: one input_required result carries all three.
            let greeting = ctx.request_client_keyed(
                "greeting",
                "sampling/createMessage",
                sample("Generate a greeting", 50),
            );
            let roots = ctx.request_client_keyed("client_roots", "roots/list", json!({}));
            let ((name, greeting), roots) =
                futures_lite::future::zip(futures_lite::future::zip(ask_name(&ctx), greeting), roots)
                    .await;
            let (name, greeting, roots) = (name?, greeting?, roots?);
            Ok(ToolOutput::text(format!(
                "name={}, greeting={}, roots={}",
                accepted_field(&name, "name").unwrap_or_default(),
                sampled_text(&greeting),
                root_count(&roots)
            )))
        },
    )
}

fn input_required_multi_round() -> Tool {
    Tool::new(
        "test_input_required_result_multi_round",
        "Asks two questions one after the other (input required twice: keys step1, step2)",
        no_args(),
        |_args, ctx| async move {
            let first = ctx
                .request_client_keyed(
                    "step1",
                    "elicitation/create",
                    form(
                        "Step 1: What is your name?",
                        json!({"name": {"type": "string", "description": "Your name"}}),
                        &["name"],
                    ),
                )
                .await?;
            let second = ctx
                .request_client_keyed(
                    "step2",
                    "elicitation/create",
                    form(
                        "Step 2: What is your favorite color?",
                        json!({"color": {"type": "string", "description": "Your favorite color"}}),
                        &["color"],
                    ),
                )
                .await?;
            Ok(ToolOutput::text(format!(
                "{} likes {}",
                accepted_field(&first, "name").unwrap_or_else(|| "someone".into()),
                accepted_field(&second, "color").unwrap_or_else(|| "no color".into())
            )))
        },
    )
}

fn input_required_capabilities() -> Tool {
    Tool::new(
        "test_input_required_result_capabilities",
        "Asks only through the capabilities the client declared (sampling: key sample_input; elicitation: key user_input)",
        no_args(),
        |_args, ctx| async move {
            let caps = ctx.client_capabilities();
            let (sampling, elicitation) = (
                caps.get("sampling").is_some(),
                caps.get("elicitation").is_some(),
            );
            let ask_sample = async {
                if sampling {
                    ctx.request_client_keyed(
                        "sample_input",
                        "sampling/createMessage",
                        sample("Sample request", 50),
                    )
                    .await
                    .map(Some)
                } else {
                    Ok(None)
                }
            };
            let ask_user = async {
                if elicitation {
                    ctx.request_client_keyed(
                        "user_input",
                        "elicitation/create",
                        form(
                            "Any input for the tool?",
                            json!({"input": {"type": "string", "description": "Input"}}),
                            &[],
                        ),
                    )
                    .await
                    .map(Some)
                } else {
                    Ok(None)
                }
            };
            let (sampled, elicited) = futures_lite::future::zip(ask_sample, ask_user).await;
            let (sampled, elicited) = (sampled?, elicited?);
            Ok(ToolOutput::text(format!(
                "sampling: {}; elicitation: {}",
                sampled.as_ref().map_or("not declared", sampled_text),
                elicited
                    .as_ref()
                    .map_or("not declared".to_string(), |e| accepted_field(e, "input")
                        .unwrap_or_else(|| "nothing given".into()))
            )))
        },
    )
}

/// A tool that sends `notifications/<kind>/list_changed` to every session of this server.
fn trigger_list_change(name: &str, kind: &'static str) -> Tool {
    Tool::new(
        name,
        &format!(
            "Sends notifications/{kind}/list_changed (the {kind} list itself does not change)"
        ),
        no_args(),
        move |_args, ctx| async move {
            ctx.list_changed(kind);
            Ok(ToolOutput::text("Mutation triggered"))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonrpc::Id;
    use crate::mcp::input::{self, InputRound, Outcome};
    use crate::mcp::revision::Revision;
    use crate::rt::{CancelToken, Host, OutMsg, Outbound, SendError};
    use crate::server::{CoreLimits, HandlerResult, SessionCore};
    use futures_lite::future::{block_on, poll_once, BoxedLocal};
    use ringmcp_shards::SessionId;
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::rc::Rc;

    /// Captures what the session would send to the client.
    #[derive(Default)]
    struct Captured(RefCell<Vec<Value>>);

    impl Outbound for Captured {
        fn send(&self, msg: OutMsg) -> Result<(), SendError> {
            let v = serde_json::from_slice(msg.as_bytes()).map_err(|_| SendError::Closed)?;
            self.0.borrow_mut().push(v);
            Ok(())
        }
    }

    impl Captured {
        fn take(&self) -> Vec<Value> {
            std::mem::take(&mut *self.0.borrow_mut())
        }
    }

    /// Short sleeps end at once; long ones (the client-request timeout) never do.
    #[derive(Default)]
    struct FakeHost(RefCell<Vec<String>>);

    impl Host for FakeHost {
        fn sleep(&self, d: Duration) -> BoxedLocal<()> {
            if d < Duration::from_secs(1) {
                Box::pin(async {})
            } else {
                Box::pin(futures_lite::future::pending())
            }
        }
        fn register(&self, _: &SessionId, _: &str) -> Result<(), String> {
            Ok(())
        }
        fn subscribe(&self, _: &SessionId, _: &str, _: &str) -> Result<(), String> {
            Ok(())
        }
        fn unsubscribe(&self, _: &SessionId, _: &str, _: &str) {}
        fn resource_updated(&self, server: &str, uri: &str) {
            self.0.borrow_mut().push(format!("updated {server} {uri}"));
        }
        fn list_changed(&self, server: &str, method: &str) {
            self.0.borrow_mut().push(format!("{server} {method}"));
        }
    }

    struct Harness {
        core: Rc<SessionCore>,
        out: Rc<Captured>,
        host: Rc<FakeHost>,
    }

    fn limits() -> CoreLimits {
        CoreLimits {
            in_flight_max: 8,
            client_requests_max: 4,
            client_request_timeout: Duration::from_secs(60),
            page_size: 100,
            batch_max: 8,
            shard: 0,
            tool_call_timeout: None,
            breaker: None,
        }
    }

    fn harness(client_capabilities: Value) -> Harness {
        let out = Rc::new(Captured::default());
        let host = Rc::new(FakeHost::default());
        let core = SessionCore::new(
            SessionId::from_bytes([7; 16]),
            Rc::new((factory())()),
            out.clone(),
            host.clone(),
            limits(),
        );
        core.client_capabilities.set(&client_capabilities);
        Harness { core, out, host }
    }

    /// A per-request core of the stateless revision, as the HTTP transport builds it.
    fn stateless_harness(client_capabilities: Value, log_level: Option<&str>) -> Harness {
        let out = Rc::new(Captured::default());
        let host = Rc::new(FakeHost::default());
        let mut m = json!({
            crate::mcp::meta::PROTOCOL_VERSION: "2026-07-28",
            crate::mcp::meta::CLIENT_CAPABILITIES: client_capabilities,
        });
        if let Some(level) = log_level {
            m[crate::mcp::meta::LOG_LEVEL] = json!(level);
        }
        let mut params = Map::new();
        params.insert("_meta".into(), m);
        let meta = crate::mcp::meta::RequestMeta::parse(&params).expect("valid _meta");
        let core = SessionCore::stateless(
            SessionId::from_bytes([9; 16]),
            Rc::new((factory())()),
            out.clone(),
            host.clone(),
            limits(),
            Revision::V2026_07_28,
            &meta,
        );
        Harness { core, out, host }
    }

    fn all_caps() -> Value {
        json!({"sampling": {}, "elicitation": {}, "roots": {}})
    }

    impl Harness {
        fn ctx(&self, token: Option<Value>) -> Ctx {
            Ctx::new(self.core.clone(), token, CancelToken::new())
        }
        fn rev(&self) -> Revision {
            self.core.revision()
        }
        fn call(&self, name: &str, args: Value, token: Option<Value>) -> HandlerResult<Value> {
            let tool = self.core.server.find_tool(name).expect("tool exists");
            let args = args.as_object().cloned().unwrap_or_default();
            block_on((tool.handler)(args, self.ctx(token))).map(|o| o.to_json(self.rev()))
        }
        /// Calls a tool that sends one request to the client; answers it with `answer`.
        /// Returns the request the tool sent and the tool's result.
        fn call_answering(&self, name: &str, args: Value, answer: Value) -> (Value, Value) {
            let tool = self.core.server.find_tool(name).expect("tool exists");
            let args = args.as_object().cloned().unwrap_or_default();
            let mut fut = (tool.handler)(args, self.ctx(None));
            assert!(
                block_on(poll_once(&mut fut)).is_none(),
                "waits for the client"
            );
            let sent = self.out.take();
            assert_eq!(sent.len(), 1, "one request: {sent:?}");
            let request = sent[0].clone();
            let id = Id::Str(request["id"].as_str().expect("string id").to_string());
            assert!(self.core.complete_client_request(&id, Ok(answer)));
            let result = block_on(fut).expect("tool result").to_json(self.rev());
            (request, result)
        }
        /// Runs a tool under an input round holding `answers` (stateless revision).
        fn call_round(&self, name: &str, answers: Value) -> Outcome {
            let tool = self.core.server.find_tool(name).expect("tool exists");
            let rev = self.rev();
            self.in_round(answers, |ctx| {
                let fut = (tool.handler)(Map::new(), ctx);
                async move { fut.await.map(|o| o.to_json(rev)) }
            })
        }
        /// Runs what `start` starts with a context under an input round holding `answers`.
        fn in_round<F>(&self, answers: Value, start: impl FnOnce(Ctx) -> F) -> Outcome
        where
            F: std::future::Future<Output = HandlerResult<Value>> + 'static,
        {
            let round = InputRound::new(answers.as_object().cloned().unwrap_or_default(), 4);
            let fut = start(self.ctx(None).with_input(round.clone()));
            block_on(input::run(Box::pin(fut), round))
        }
        fn prompt(&self, name: &str, args: Value) -> Value {
            let p = self
                .core
                .server
                .prompts
                .iter()
                .find(|p| p.name == name)
                .expect("prompt exists");
            let args = args.as_object().cloned().unwrap_or_default();
            block_on((p.get)(args, self.ctx(None)))
                .expect("prompt result")
                .to_json(self.rev())
        }
        fn read(&self, uri: &str) -> Value {
            let s = &self.core.server;
            let contents = if let Some(r) = s.resources.iter().find(|r| r.uri == uri) {
                block_on((r.read)(uri.to_string(), self.ctx(None)))
            } else {
                let (t, vars) = s
                    .templates
                    .iter()
                    .find_map(|t| t.matches(uri).map(|v| (t, v)))
                    .expect("a template matches");
                block_on((t.read)(uri.to_string(), vars, self.ctx(None)))
            };
            let contents = contents.expect("read result");
            assert_eq!(contents.len(), 1);
            contents[0].to_json()
        }
    }

    fn base64_decode(s: &str) -> Vec<u8> {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let digits: HashMap<u8, u32> = ALPHABET
            .iter()
            .enumerate()
            .map(|(i, &c)| (c, i as u32))
            .collect();
        assert_eq!(s.len() % 4, 0, "padded base64");
        let mut out = Vec::new();
        for chunk in s.as_bytes().chunks(4) {
            let pad = chunk.iter().filter(|&&c| c == b'=').count();
            let mut n = 0u32;
            for &c in chunk {
                n = (n << 6) | if c == b'=' { 0 } else { digits[&c] };
            }
            let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
            out.extend_from_slice(&bytes[..3 - pad]);
        }
        out
    }

    fn le32(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
    }

    #[test]
    fn fixtures_are_listed_in_order() {
        let server = (factory())();
        assert_eq!(server.name, "conformance");
        let tools: Vec<&str> = server.tools.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(tools, TOOL_NAMES);
        let uris: Vec<&str> = server.resources.iter().map(|r| r.uri.as_str()).collect();
        assert_eq!(uris, RESOURCE_URIS);
        let templates: Vec<&str> = server
            .templates
            .iter()
            .map(|t| t.uri_template.as_str())
            .collect();
        assert_eq!(templates, [TEMPLATE_URI]);
        let prompts: Vec<&str> = server.prompts.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(prompts, PROMPT_NAMES);
    }

    #[test]
    fn tool_entries_satisfy_the_suite() {
        let server = (factory())();
        for t in &server.tools {
            assert!(t.is_visible(), "{}", t.name);
            let n = &t.name;
            assert!((1..=128).contains(&n.len()), "{n}");
            assert!(
                n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')),
                "{n}"
            );
            assert!(
                t.description.as_deref().is_some_and(|d| !d.is_empty()),
                "{n}"
            );
            assert_eq!(t.input_schema["type"], "object", "{n}");
        }
        for r in &server.resources {
            assert!(r.title.is_some() && r.description.is_some(), "{}", r.uri);
        }
        for p in &server.prompts {
            assert!(p.description.is_some(), "{}", p.name);
        }
        let schema = &server
            .find_tool("json_schema_2020_12_tool")
            .expect("listed")
            .describe(Revision::V2025_11_25)["inputSchema"];
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
        assert_eq!(schema["$defs"]["address"]["$anchor"], "addressDef");
        assert_eq!(schema["additionalProperties"], false);
        assert!(schema["allOf"][0]["anyOf"].is_array());
        assert!(schema.get("if").is_some() && schema.get("then").is_some());
        assert!(schema.get("else").is_some());
    }

    #[test]
    fn media_constants_are_well_formed() {
        let png = base64_decode(TEST_IMAGE_PNG);
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&png[12..16], b"IHDR");
        assert_eq!(&png[16..24], &[0, 0, 0, 1, 0, 0, 0, 1]);
        assert_eq!(&png[png.len() - 8..png.len() - 4], b"IEND");
        let wav = base64_decode(TEST_AUDIO_WAV);
        assert_eq!(&wav[..4], b"RIFF");
        assert_eq!(le32(&wav, 4) as usize, wav.len() - 8);
        assert_eq!(&wav[8..16], b"WAVEfmt ");
        let (rate, byte_rate) = (le32(&wav, 24), le32(&wav, 28));
        let (channels, align, bits) = (wav[22] as u32, wav[32] as u32, wav[34] as u32);
        assert_eq!(byte_rate, rate * channels * bits / 8);
        assert_eq!(align, channels * bits / 8);
        assert_eq!(&wav[36..40], b"data");
        assert_eq!(le32(&wav, 40) as usize, wav.len() - 44);
    }

    #[test]
    fn content_tools() {
        let h = harness(all_caps());
        let r = h.call("test_simple_text", json!({}), None).expect("ok");
        assert_eq!(
            r["content"][0]["text"],
            "This is a simple text response for testing."
        );
        let r = h.call("test_image_content", json!({}), None).expect("ok");
        assert_eq!(
            r["content"][0],
            json!({"type":"image","data":TEST_IMAGE_PNG,"mimeType":"image/png"})
        );
        let r = h.call("test_audio_content", json!({}), None).expect("ok");
        assert_eq!(r["content"][0]["type"], "audio");
        assert_eq!(r["content"][0]["mimeType"], "audio/wav");
        let r = h
            .call("test_embedded_resource", json!({}), None)
            .expect("ok");
        assert_eq!(
            r["content"][0],
            json!({"type":"resource","resource":{"uri":"test://embedded-resource","mimeType":"text/plain","text":"This is an embedded resource content."}})
        );
        let r = h
            .call("test_multiple_content_types", json!({}), None)
            .expect("ok");
        let kinds: Vec<&str> = r["content"]
            .as_array()
            .expect("content")
            .iter()
            .filter_map(|c| c["type"].as_str())
            .collect();
        assert_eq!(kinds, ["text", "image", "resource"]);
        assert_eq!(
            r["content"][2]["resource"]["text"],
            "{\"test\":\"data\",\"value\":123}"
        );
        let r = h
            .call("test_error_handling", json!({}), None)
            .expect("a result");
        assert_eq!(r["isError"], true);
        assert_eq!(
            r["content"][0]["text"],
            "This tool intentionally returns an error for testing"
        );
    }

    #[test]
    fn logging_and_progress() {
        let h = harness(all_caps());
        h.call("test_tool_with_logging", json!({}), None)
            .expect("ok");
        let logs = h.out.take();
        let data: Vec<&str> = logs
            .iter()
            .filter_map(|m| m["params"]["data"].as_str())
            .collect();
        assert_eq!(
            data,
            [
                "Tool execution started",
                "Tool processing data",
                "Tool execution completed"
            ]
        );
        assert!(logs
            .iter()
            .all(|m| m["method"] == "notifications/message" && m["params"]["level"] == "info"));

        h.call("test_tool_with_progress", json!({}), Some(json!(7)))
            .expect("ok");
        let progress = h.out.take();
        assert_eq!(progress.len(), 3);
        for (m, want) in progress.iter().zip([0.0, 50.0, 100.0]) {
            assert_eq!(m["method"], "notifications/progress");
            assert_eq!(m["params"]["progressToken"], 7);
            assert_eq!(m["params"]["progress"].as_f64(), Some(want));
            assert_eq!(m["params"]["total"].as_f64(), Some(100.0));
        }
        h.call("test_tool_with_progress", json!({}), None)
            .expect("ok");
        assert!(h.out.take().is_empty());
    }

    #[test]
    fn sampling_sends_the_expected_request() {
        let h = harness(all_caps());
        let (req, result) = h.call_answering(
            "test_sampling",
            json!({"prompt": "Test prompt for sampling"}),
            json!({"role":"assistant","content":{"type":"text","text":"This is a test response from the client"},"model":"test-model","stopReason":"endTurn"}),
        );
        assert_eq!(req["method"], "sampling/createMessage");
        assert_eq!(
            req["params"],
            json!({"messages":[{"role":"user","content":{"type":"text","text":"Test prompt for sampling"}}],"maxTokens":100})
        );
        assert_eq!(
            result["content"][0]["text"],
            "LLM response: This is a test response from the client"
        );
        let no_sampling = harness(json!({}));
        let r = no_sampling
            .call("test_sampling", json!({"prompt": "x"}), None)
            .expect("a result");
        assert_eq!(r["isError"], true);
    }

    #[test]
    fn elicitations_send_the_expected_schemas() {
        let h = harness(all_caps());
        let (req, result) = h.call_answering(
            "test_elicitation",
            json!({"message": "Please provide your information"}),
            json!({"action":"accept","content":{"username":"testuser","email":"test@example.com"}}),
        );
        assert_eq!(req["method"], "elicitation/create");
        assert_eq!(req["params"]["message"], "Please provide your information");
        assert_eq!(
            req["params"]["requestedSchema"]["required"],
            json!(["username", "email"])
        );
        assert_eq!(
            result["content"][0]["text"],
            "User response: action=accept, content={\"username\":\"testuser\",\"email\":\"test@example.com\"}"
        );

        let (req, _) = h.call_answering(
            "test_elicitation_sep1034_defaults",
            json!({}),
            json!({"action":"accept","content":{"name":"Jane Smith","age":25,"score":88,"status":"inactive","verified":false}}),
        );
        let p = &req["params"]["requestedSchema"]["properties"];
        assert_eq!(p["name"]["default"], "John Doe");
        assert_eq!(p["age"]["type"], "integer");
        assert_eq!(p["age"]["default"], 30);
        assert_eq!(p["score"]["default"], 95.5);
        assert_eq!(p["status"]["default"], "active");
        assert!(p["status"]["enum"]
            .as_array()
            .expect("enum")
            .contains(&json!("active")));
        assert_eq!(p["verified"]["default"], true);

        let (req, result) = h.call_answering(
            "test_elicitation_sep1330_enums",
            json!({}),
            json!({"action":"decline"}),
        );
        let p = &req["params"]["requestedSchema"]["properties"];
        assert!(
            p["untitledSingle"]["enum"].is_array() && p["untitledSingle"].get("oneOf").is_none()
        );
        assert!(p["titledSingle"]["oneOf"].is_array() && p["titledSingle"].get("enum").is_none());
        assert_eq!(
            p["legacyEnum"]["enum"].as_array().map(Vec::len),
            p["legacyEnum"]["enumNames"].as_array().map(Vec::len)
        );
        assert!(p["untitledMulti"]["items"]["enum"].is_array());
        assert!(p["titledMulti"]["items"]["anyOf"].is_array());
        assert!(p["titledMulti"]["items"].get("enum").is_none());
        assert_eq!(
            result["content"][0]["text"],
            "Elicitation completed: action=decline, content={}"
        );
    }

    #[test]
    fn diagnostic_tools() {
        let h = harness(json!({}));
        let e = h
            .call("test_missing_capability", json!({}), None)
            .expect_err("needs sampling");
        assert_eq!(e.code, MISSING_REQUIRED_CLIENT_CAPABILITY);
        assert_eq!(
            e.data,
            Some(json!({"requiredCapabilities": {"sampling": {}}}))
        );
        let h = harness(all_caps());
        let r = h
            .call("test_missing_capability", json!({}), None)
            .expect("ok");
        assert_eq!(r["content"][0]["text"], "Success");

        let r = h
            .call("test_streaming_elicitation", json!({}), Some(json!("t")))
            .expect("ok");
        assert_eq!(r["content"][0]["text"], "Streaming complete");
        let sent = h.out.take();
        assert!(sent.iter().all(|m| m.get("id").is_none()
            && m["method"]
                .as_str()
                .is_some_and(|s| s.starts_with("notifications/"))));

        h.call("test_trigger_tool_change", json!({}), None)
            .expect("ok");
        h.call("test_trigger_prompt_change", json!({}), None)
            .expect("ok");
        assert_eq!(
            *h.host.0.borrow(),
            [
                "conformance notifications/tools/list_changed",
                "conformance notifications/prompts/list_changed"
            ]
        );
        let r = h
            .call("json_schema_2020_12_tool", json!({"name": "x"}), None)
            .expect("ok");
        assert_eq!(
            r["content"][0]["text"],
            "JSON Schema 2020-12 tool called with: {\"name\":\"x\"}"
        );
    }

    #[test]
    fn resources_and_template() {
        let h = harness(all_caps());
        assert_eq!(
            h.read(STATIC_TEXT_URI),
            json!({"uri":"test://static-text","mimeType":"text/plain","text":"This is the content of the static text resource."})
        );
        assert_eq!(
            h.read(STATIC_BINARY_URI),
            json!({"uri":"test://static-binary","mimeType":"image/png","blob":TEST_IMAGE_PNG})
        );
        assert_eq!(h.read(WATCHED_URI)["text"], "Watched resource content");
        assert_eq!(
            h.read("test://template/123/data"),
            json!({"uri":"test://template/123/data","mimeType":"application/json","text":"{\"id\":\"123\",\"templateTest\":true,\"data\":\"Data for ID: 123\"}"})
        );
    }

    #[test]
    fn prompts_and_completion() {
        let h = harness(all_caps());
        let r = h.prompt("test_simple_prompt", json!({}));
        assert_eq!(
            r["messages"],
            json!([{"role":"user","content":{"type":"text","text":"This is a simple prompt for testing."}}])
        );
        let r = h.prompt(
            "test_prompt_with_arguments",
            json!({"arg1": "testValue1", "arg2": "testValue2"}),
        );
        assert_eq!(
            r["messages"][0]["content"]["text"],
            "Prompt with arguments: arg1='testValue1', arg2='testValue2'"
        );
        let r = h.prompt(
            "test_prompt_with_embedded_resource",
            json!({"resourceUri": "test://example-resource"}),
        );
        assert_eq!(
            r["messages"][0]["content"],
            json!({"type":"resource","resource":{"uri":"test://example-resource","mimeType":"text/plain","text":"Embedded resource content for testing."}})
        );
        let r = h.prompt("test_prompt_with_image", json!({}));
        assert_eq!(r["messages"][0]["content"]["type"], "image");
        assert_eq!(r["messages"][0]["content"]["mimeType"], "image/png");

        let server = &h.core.server;
        let p = server
            .prompts
            .iter()
            .find(|p| p.name == "test_prompt_with_arguments")
            .expect("prompt");
        let complete = p.complete.as_ref().expect("completer");
        assert_eq!(
            complete("arg1", "test", &Map::new()),
            ["testValue1", "testValue2"]
        );
        let t = &server.templates[0];
        let complete = t.complete.as_ref().expect("completer");
        assert_eq!(complete("id", "1", &Map::new()), ["123"]);
    }

    fn input_required(o: Outcome) -> input::InputRequired {
        match o {
            Outcome::InputRequired(ir) => ir,
            Outcome::Complete(r) => panic!("expected input_required, got {r:?}"),
        }
    }

    fn complete(o: Outcome) -> Value {
        match o {
            Outcome::Complete(Ok(v)) => v,
            Outcome::Complete(Err(e)) => panic!("expected a result, got {e:?}"),
            Outcome::InputRequired(ir) => panic!("expected a result, got {ir:?}"),
        }
    }

    fn methods(ir: &input::InputRequired) -> Vec<(&str, &str)> {
        ir.requests
            .iter()
            .map(|(k, v)| (k.as_str(), v["method"].as_str().unwrap_or("")))
            .collect()
    }

    #[test]
    fn input_required_rounds() {
        let h = stateless_harness(all_caps(), None);
        let ir = input_required(h.call_round("test_input_required_result_elicitation", json!({})));
        assert_eq!(methods(&ir), [("user_name", "elicitation/create")]);
        assert_eq!(
            ir.requests["user_name"]["params"]["requestedSchema"]["type"],
            "object"
        );
        let r = complete(h.call_round(
            "test_input_required_result_elicitation",
            json!({"user_name": {"action": "accept", "content": {"name": "Alice"}}}),
        ));
        assert_eq!(r["content"][0]["text"], "Hello, Alice!");
        // A wrong key or an answer of the wrong shape asks again.
        for answers in [
            json!({"wrong_key": {"action": "accept"}}),
            json!({"user_name": 12345}),
        ] {
            input_required(h.call_round("test_input_required_result_elicitation", answers));
        }

        // Three questions asked together come back in one result.
        let ir =
            input_required(h.call_round("test_input_required_result_multiple_inputs", json!({})));
        assert_eq!(
            methods(&ir),
            [
                ("user_name", "elicitation/create"),
                ("greeting", "sampling/createMessage"),
                ("client_roots", "roots/list")
            ]
        );
        let r = complete(h.call_round(
            "test_input_required_result_multiple_inputs",
            json!({
                "user_name": {"action": "accept", "content": {"name": "Alice"}},
                "greeting": {"role": "assistant", "content": {"type": "text", "text": "Hello there!"}, "model": "m"},
                "client_roots": {"roots": [{"uri": "file:///test/root"}]}
            }),
        ));
        assert_eq!(
            r["content"][0]["text"],
            "name=Alice, greeting=Hello there!, roots=1"
        );

        // An unkeyed client request is keyed by its rank.
        let ir = input_required(h.call_round("test_elicitation_sep1034_defaults", json!({})));
        assert_eq!(methods(&ir), [("input-0", "elicitation/create")]);
    }

    #[test]
    fn multi_round_carries_answers_in_sealed_state() {
        use crate::mcp::request_state::{self, Binding, StateKey};
        let h = stateless_harness(all_caps(), None);
        let key = StateKey::generate().expect("randomness");
        let args = json!({});
        let binding = Binding {
            server: SERVER_NAME,
            method: "tools/call",
            name: "test_input_required_result_multi_round",
            arguments: &args,
        };
        let tool = "test_input_required_result_multi_round";
        let r1 = input_required(h.call_round(tool, json!({})));
        assert_eq!(methods(&r1), [("step1", "elicitation/create")]);
        let state1 = r1.to_result(&key, &binding, 1_000)["requestState"].clone();
        // Round 2: the state (nothing answered yet) plus the first answer.
        let mut answers =
            request_state::open(&key, state1.as_str().unwrap(), &binding, 2_000, 60_000)
                .expect("verified");
        answers.insert(
            "step1".into(),
            json!({"action": "accept", "content": {"name": "Alice"}}),
        );
        let r2 = input_required(h.call_round(tool, Value::Object(answers)));
        assert_eq!(methods(&r2), [("step2", "elicitation/create")]);
        let result2 = r2.to_result(&key, &binding, 2_000);
        assert_eq!(result2["resultType"], "input_required");
        assert_ne!(result2["requestState"], state1);
        // Round 3: step1 comes from the state only, step2 from the retry.
        let mut answers = request_state::open(
            &key,
            result2["requestState"].as_str().unwrap(),
            &binding,
            3_000,
            60_000,
        )
        .expect("verified");
        assert!(answers.contains_key("step1"));
        answers.insert(
            "step2".into(),
            json!({"action": "accept", "content": {"color": "blue"}}),
        );
        let r = complete(h.call_round(tool, Value::Object(answers)));
        assert_eq!(r["content"][0]["text"], "Alice likes blue");
    }

    #[test]
    fn input_follows_declared_capabilities() {
        let h = stateless_harness(json!({"sampling": {}}), None);
        let ir = input_required(h.call_round("test_input_required_result_capabilities", json!({})));
        assert_eq!(methods(&ir), [("sample_input", "sampling/createMessage")]);
        let h = stateless_harness(json!({}), None);
        let r = complete(h.call_round("test_input_required_result_capabilities", json!({})));
        assert_eq!(
            r["content"][0]["text"],
            "sampling: not declared; elicitation: not declared"
        );
        // Asking through an undeclared capability is -32021 under the stateless revision.
        match h.call_round("test_input_required_result_sampling", json!({})) {
            Outcome::Complete(Err(e)) => {
                assert_eq!(e.code, MISSING_REQUIRED_CLIENT_CAPABILITY);
                assert_eq!(
                    e.data,
                    Some(json!({"requiredCapabilities": {"sampling": {}}}))
                );
            }
            _ => panic!("expected -32021"),
        }
    }

    #[test]
    fn prompt_asks_for_input() {
        let h = stateless_harness(all_caps(), None);
        let p = h
            .core
            .server
            .prompts
            .iter()
            .find(|p| p.name == "test_input_required_result_prompt")
            .expect("prompt");
        let rev = h.rev();
        let run = |answers: Value| {
            h.in_round(answers, |ctx| {
                let fut = (p.get)(Map::new(), ctx);
                async move { fut.await.map(|o| o.to_json(rev)) }
            })
        };
        let ir = input_required(run(json!({})));
        assert_eq!(methods(&ir), [("user_context", "elicitation/create")]);
        let r = complete(run(
            json!({"user_context": {"action": "accept", "content": {"context": "test context"}}}),
        ));
        assert_eq!(
            r["messages"][0]["content"]["text"],
            "Use this context: test context"
        );
    }

    #[test]
    fn stateless_logging_needs_a_level() {
        let h = stateless_harness(json!({}), None);
        h.call("test_logging_tool", json!({}), None).expect("ok");
        h.call("test_tool_with_logging", json!({}), None)
            .expect("ok");
        assert!(h.out.take().is_empty());
        let h = stateless_harness(json!({}), Some("info"));
        h.call("test_tool_with_logging", json!({}), None)
            .expect("ok");
        assert_eq!(h.out.take().len(), 3);
        let h = stateless_harness(json!({}), Some("error"));
        h.call("test_tool_with_logging", json!({}), None)
            .expect("ok");
        assert!(h.out.take().is_empty());
    }
}
