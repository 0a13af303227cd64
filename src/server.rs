//! The Rust API to define MCP servers: [`McpServer`] with typed [`Tool`]s, [`Resource`]s,
//! [`ResourceTemplate`]s and [`Prompt`]s, and the [`Ctx`] a handler gets for progress,
//! logging, cancellation, client requests and resource-updated notifications.
//!
//! Handlers are `async` and run on the shard that owns the session; they must never block
//! it (sleep with [`Ctx::sleep`], not `std::thread::sleep`). A server value is built once per
//! shard by a factory (see [`ServerFactory`]), so handlers may hold `Rc` state; state that
//! every shard must see lives behind something `Sync` the factory captures.

use crate::breaker::SharedBreaker;
use crate::jsonrpc::{self, ErrorObject, Id};
use crate::mcp::input::InputRound;
use crate::mcp::meta::{self, RequestMeta};
use crate::mcp::revision::Revision;
use crate::rt::{oneshot, CancelToken, Host, OneshotSender, OutMsg, Outbound};
use futures_lite::future::BoxedLocal;
use ringmcp_shards::SessionId;
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Builds one shard's copy of a server; called once on every shard at start.
pub type ServerFactory = Arc<dyn Fn() -> McpServer + Send + Sync>;

/// A handler's result or protocol error.
pub type HandlerResult<T> = Result<T, ErrorObject>;

type ToolHandler = Rc<dyn Fn(Map<String, Value>, Ctx) -> BoxedLocal<HandlerResult<ToolOutput>>>;
type ReadHandler = Rc<dyn Fn(String, Ctx) -> BoxedLocal<HandlerResult<Vec<ResourceContents>>>>;
type TemplateHandler = Rc<
    dyn Fn(
        String,
        HashMap<String, String>,
        Ctx,
    ) -> BoxedLocal<HandlerResult<Vec<ResourceContents>>>,
>;
type PromptHandler = Rc<dyn Fn(Map<String, Value>, Ctx) -> BoxedLocal<HandlerResult<PromptOutput>>>;
/// Completion callback: (argument name, partial value, other arguments already given) ->
/// candidate values.
pub type Completer = Rc<dyn Fn(&str, &str, &Map<String, Value>) -> Vec<String>>;

/// One MCP server: its identity and what it offers.
pub struct McpServer {
    /// Name reported in `serverInfo`.
    pub name: String,
    /// Version reported in `serverInfo`.
    pub version: String,
    /// Human-readable title.
    pub title: Option<String>,
    /// `instructions` returned by initialize.
    pub instructions: Option<String>,
    pub(crate) tools: Vec<Tool>,
    tool_index: HashMap<String, usize>,
    pub(crate) resources: Vec<Resource>,
    pub(crate) templates: Vec<ResourceTemplate>,
    pub(crate) prompts: Vec<Prompt>,
    /// This shard's circuit breaker for the whole server (see [`crate::breaker`]).
    pub(crate) breaker: SharedBreaker,
}

impl McpServer {
    /// A server with no tools, resources or prompts yet.
    pub fn new(name: &str, version: &str) -> Self {
        McpServer {
            name: name.into(),
            version: version.into(),
            title: None,
            instructions: None,
            tools: Vec::new(),
            tool_index: HashMap::new(),
            resources: Vec::new(),
            templates: Vec::new(),
            prompts: Vec::new(),
            breaker: SharedBreaker::default(),
        }
    }
    /// Sets the title.
    pub fn title(mut self, t: &str) -> Self {
        self.title = Some(t.into());
        self
    }
    /// Sets the instructions.
    pub fn instructions(mut self, t: &str) -> Self {
        self.instructions = Some(t.into());
        self
    }
    /// Adds a tool (a later tool with the same name replaces the earlier one).
    pub fn tool(mut self, tool: Tool) -> Self {
        if let Some(&i) = self.tool_index.get(&tool.name) {
            self.tools[i] = tool;
        } else {
            self.tool_index.insert(tool.name.clone(), self.tools.len());
            self.tools.push(tool);
        }
        self
    }
    /// Adds a static resource.
    pub fn resource(mut self, r: Resource) -> Self {
        self.resources.push(r);
        self
    }
    /// Adds a resource template.
    pub fn template(mut self, t: ResourceTemplate) -> Self {
        self.templates.push(t);
        self
    }
    /// Adds a prompt.
    pub fn prompt(mut self, p: Prompt) -> Self {
        self.prompts.push(p);
        self
    }
    /// Looks a visible tool up by name.
    pub fn find_tool(&self, name: &str) -> Option<&Tool> {
        self.tool_index
            .get(name)
            .map(|&i| &self.tools[i])
            .filter(|t| t.is_visible())
    }
}

/// A tool: name, schemas, annotations and an async handler.
pub struct Tool {
    /// Unique name.
    pub name: String,
    /// Title (2025-06-18+).
    pub title: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// JSON Schema of the arguments (an object schema).
    pub input_schema: Value,
    /// JSON Schema of `structuredContent` (2025-06-18+).
    pub output_schema: Option<Value>,
    /// Annotations (readOnlyHint, destructiveHint, idempotentHint, openWorldHint, title).
    pub annotations: Option<Value>,
    visible: Option<Rc<dyn Fn() -> bool>>,
    pub(crate) handler: ToolHandler,
    /// `input_schema` compiled on first use (tools do not change once served).
    pub(crate) validator: std::cell::OnceCell<crate::schema::Validator>,
    /// This shard's circuit breaker for the tool.
    pub(crate) breaker: SharedBreaker,
}

impl Tool {
    /// A tool whose handler takes the raw argument object.
    pub fn new<F, Fut>(name: &str, description: &str, input_schema: Value, handler: F) -> Self
    where
        F: Fn(Map<String, Value>, Ctx) -> Fut + 'static,
        Fut: Future<Output = HandlerResult<ToolOutput>> + 'static,
    {
        Tool {
            name: name.into(),
            title: None,
            description: Some(description.into()),
            input_schema,
            output_schema: None,
            annotations: None,
            visible: None,
            handler: Rc::new(move |args, ctx| Box::pin(handler(args, ctx))),
            validator: Default::default(),
            breaker: SharedBreaker::default(),
        }
    }

    /// A typed tool: the arguments are deserialized into `A`; a mismatch is answered as
    /// invalid params before the handler runs.
    pub fn typed<A, F, Fut>(name: &str, description: &str, input_schema: Value, handler: F) -> Self
    where
        A: DeserializeOwned + 'static,
        F: Fn(A, Ctx) -> Fut + 'static,
        Fut: Future<Output = HandlerResult<ToolOutput>> + 'static,
    {
        let handler = Rc::new(handler);
        Self::new(name, description, input_schema, move |args, ctx| {
            let handler = handler.clone();
            async move {
                let a: A = serde_json::from_value(Value::Object(args))
                    .map_err(|e| ErrorObject::invalid_params(format!("invalid arguments: {e}")))?;
                handler(a, ctx).await
            }
        })
    }
    /// Sets the title.
    pub fn title(mut self, t: &str) -> Self {
        self.title = Some(t.into());
        self
    }
    /// Sets the output schema.
    pub fn output_schema(mut self, s: Value) -> Self {
        self.output_schema = Some(s);
        self
    }
    /// Sets the annotations.
    pub fn annotations(mut self, a: Value) -> Self {
        self.annotations = Some(a);
        self
    }
    /// Lists and serves the tool only while `f` returns true.
    pub fn visible_when(mut self, f: impl Fn() -> bool + 'static) -> Self {
        self.visible = Some(Rc::new(f));
        self
    }
    /// Whether the tool is offered now.
    pub fn is_visible(&self) -> bool {
        self.visible.as_ref().is_none_or(|f| f())
    }
    /// The tool's entry in tools/list for a revision.
    pub fn describe(&self, rev: Revision) -> Value {
        let mut m = Map::new();
        m.insert("name".into(), json!(self.name));
        if rev.has_structured_output() {
            if let Some(t) = &self.title {
                m.insert("title".into(), json!(t));
            }
        }
        if let Some(d) = &self.description {
            m.insert("description".into(), json!(d));
        }
        m.insert("inputSchema".into(), self.input_schema.clone());
        if rev.has_structured_output() {
            if let Some(s) = &self.output_schema {
                m.insert("outputSchema".into(), s.clone());
            }
        }
        if rev.has_annotations_and_audio() {
            if let Some(a) = &self.annotations {
                m.insert("annotations".into(), a.clone());
            }
        }
        Value::Object(m)
    }
}

/// One content block of a tool result or prompt message.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    /// Text.
    Text(String),
    /// Base64 image with its MIME type.
    Image {
        /// Base64 data.
        data: String,
        /// MIME type.
        mime_type: String,
    },
    /// Base64 audio with its MIME type (2025-03-26+).
    Audio {
        /// Base64 data.
        data: String,
        /// MIME type.
        mime_type: String,
    },
    /// An embedded resource.
    Resource(ResourceContents),
    /// A link to a resource (2025-06-18+).
    ResourceLink {
        /// URI.
        uri: String,
        /// Name.
        name: String,
        /// Description.
        description: Option<String>,
        /// MIME type.
        mime_type: Option<String>,
    },
}

impl Content {
    /// Text content.
    pub fn text(s: impl Into<String>) -> Self {
        Content::Text(s.into())
    }
    /// The JSON form for a revision.
    pub fn to_json(&self, rev: Revision) -> Value {
        match self {
            Content::Text(t) => json!({"type": "text", "text": t}),
            Content::Image { data, mime_type } => {
                json!({"type": "image", "data": data, "mimeType": mime_type})
            }
            Content::Audio { data, mime_type } => {
                if !rev.has_annotations_and_audio() {
                    // 2024-11-05 has no audio content; say what was left out.
                    return json!({"type": "text", "text": format!("[audio content ({mime_type}) omitted: needs protocol revision 2025-03-26 or later]")});
                }
                json!({"type": "audio", "data": data, "mimeType": mime_type})
            }
            Content::Resource(r) => json!({"type": "resource", "resource": r.to_json()}),
            Content::ResourceLink {
                uri,
                name,
                description,
                mime_type,
            } => {
                if !rev.has_structured_output() {
                    // Older clients know no resource_link; point at the resource in text.
                    return json!({"type": "text", "text": format!("{name}: {uri}")});
                }
                let mut m = Map::new();
                m.insert("type".into(), json!("resource_link"));
                m.insert("uri".into(), json!(uri));
                m.insert("name".into(), json!(name));
                if let Some(d) = description {
                    m.insert("description".into(), json!(d));
                }
                if let Some(mt) = mime_type {
                    m.insert("mimeType".into(), json!(mt));
                }
                Value::Object(m)
            }
        }
    }
}

/// A tool's result.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ToolOutput {
    /// Content blocks.
    pub content: Vec<Content>,
    /// `structuredContent` (2025-06-18+).
    pub structured: Option<Value>,
    /// `isError`: the tool ran and failed (a result, not a protocol error).
    pub is_error: bool,
}

impl ToolOutput {
    /// One text block.
    pub fn text(s: impl Into<String>) -> Self {
        ToolOutput {
            content: vec![Content::text(s)],
            ..Default::default()
        }
    }
    /// A tool-execution error with a text explanation.
    pub fn error(s: impl Into<String>) -> Self {
        ToolOutput {
            content: vec![Content::text(s)],
            structured: None,
            is_error: true,
        }
    }
    /// Content blocks.
    pub fn content(content: Vec<Content>) -> Self {
        ToolOutput {
            content,
            ..Default::default()
        }
    }
    /// Adds structured content.
    pub fn with_structured(mut self, v: Value) -> Self {
        self.structured = Some(v);
        self
    }
    /// The JSON result for a revision.
    pub fn to_json(&self, rev: Revision) -> Value {
        let mut m = Map::new();
        m.insert(
            "content".into(),
            Value::Array(self.content.iter().map(|c| c.to_json(rev)).collect()),
        );
        if rev.has_structured_output() {
            if let Some(s) = &self.structured {
                m.insert("structuredContent".into(), s.clone());
            }
        }
        if self.is_error {
            m.insert("isError".into(), json!(true));
        }
        Value::Object(m)
    }
}

/// The contents of a resource, text or binary.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceContents {
    /// URI.
    pub uri: String,
    /// MIME type.
    pub mime_type: Option<String>,
    /// Text or base64 blob.
    pub body: ResourceBody,
}

/// Text or blob.
#[derive(Debug, Clone, PartialEq)]
pub enum ResourceBody {
    /// UTF-8 text.
    Text(String),
    /// Base64 data.
    Blob(String),
}

impl ResourceContents {
    /// Text contents.
    pub fn text(uri: &str, mime_type: &str, text: impl Into<String>) -> Self {
        ResourceContents {
            uri: uri.into(),
            mime_type: Some(mime_type.into()),
            body: ResourceBody::Text(text.into()),
        }
    }
    /// Blob contents (already base64).
    pub fn blob(uri: &str, mime_type: &str, base64: impl Into<String>) -> Self {
        ResourceContents {
            uri: uri.into(),
            mime_type: Some(mime_type.into()),
            body: ResourceBody::Blob(base64.into()),
        }
    }
    /// The JSON form.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("uri".into(), json!(self.uri));
        if let Some(mt) = &self.mime_type {
            m.insert("mimeType".into(), json!(mt));
        }
        match &self.body {
            ResourceBody::Text(t) => m.insert("text".into(), json!(t)),
            ResourceBody::Blob(b) => m.insert("blob".into(), json!(b)),
        };
        Value::Object(m)
    }
}

/// A static resource.
pub struct Resource {
    /// URI.
    pub uri: String,
    /// Name.
    pub name: String,
    /// Title.
    pub title: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// MIME type.
    pub mime_type: Option<String>,
    pub(crate) read: ReadHandler,
}

impl Resource {
    /// A resource read by `read`.
    pub fn new<F, Fut>(uri: &str, name: &str, mime_type: &str, read: F) -> Self
    where
        F: Fn(String, Ctx) -> Fut + 'static,
        Fut: Future<Output = HandlerResult<Vec<ResourceContents>>> + 'static,
    {
        Resource {
            uri: uri.into(),
            name: name.into(),
            title: None,
            description: None,
            mime_type: Some(mime_type.into()),
            read: Rc::new(move |uri, ctx| Box::pin(read(uri, ctx))),
        }
    }
    /// A resource whose text never changes.
    pub fn fixed_text(uri: &str, name: &str, mime_type: &str, text: &str) -> Self {
        let (u, m, t) = (uri.to_string(), mime_type.to_string(), text.to_string());
        Self::new(uri, name, mime_type, move |_, _| {
            let c = ResourceContents::text(&u, &m, t.clone());
            async move { Ok(vec![c]) }
        })
    }
    /// Sets the description.
    pub fn description(mut self, d: &str) -> Self {
        self.description = Some(d.into());
        self
    }
    /// Sets the title.
    pub fn title(mut self, t: &str) -> Self {
        self.title = Some(t.into());
        self
    }
    /// The resources/list entry.
    pub fn describe(&self, rev: Revision) -> Value {
        let mut m = Map::new();
        m.insert("uri".into(), json!(self.uri));
        m.insert("name".into(), json!(self.name));
        if rev.has_structured_output() {
            if let Some(t) = &self.title {
                m.insert("title".into(), json!(t));
            }
        }
        if let Some(d) = &self.description {
            m.insert("description".into(), json!(d));
        }
        if let Some(mt) = &self.mime_type {
            m.insert("mimeType".into(), json!(mt));
        }
        Value::Object(m)
    }
}

/// A resource template (RFC 6570 level 1: `{name}` expressions, each matching one or more
/// characters other than `/`).
pub struct ResourceTemplate {
    /// The URI template.
    pub uri_template: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// MIME type.
    pub mime_type: Option<String>,
    pub(crate) read: TemplateHandler,
    pub(crate) complete: Option<Completer>,
}

impl ResourceTemplate {
    /// A template read by `read(uri, variables, ctx)`.
    pub fn new<F, Fut>(uri_template: &str, name: &str, mime_type: &str, read: F) -> Self
    where
        F: Fn(String, HashMap<String, String>, Ctx) -> Fut + 'static,
        Fut: Future<Output = HandlerResult<Vec<ResourceContents>>> + 'static,
    {
        ResourceTemplate {
            uri_template: uri_template.into(),
            name: name.into(),
            description: None,
            mime_type: Some(mime_type.into()),
            read: Rc::new(move |uri, vars, ctx| Box::pin(read(uri, vars, ctx))),
            complete: None,
        }
    }
    /// Sets the description.
    pub fn description(mut self, d: &str) -> Self {
        self.description = Some(d.into());
        self
    }
    /// Completion for the template's variables.
    pub fn completer(
        mut self,
        f: impl Fn(&str, &str, &Map<String, Value>) -> Vec<String> + 'static,
    ) -> Self {
        self.complete = Some(Rc::new(f));
        self
    }
    /// The resources/templates/list entry.
    pub fn describe(&self) -> Value {
        let mut m = Map::new();
        m.insert("uriTemplate".into(), json!(self.uri_template));
        m.insert("name".into(), json!(self.name));
        if let Some(d) = &self.description {
            m.insert("description".into(), json!(d));
        }
        if let Some(mt) = &self.mime_type {
            m.insert("mimeType".into(), json!(mt));
        }
        Value::Object(m)
    }
    /// Matches a URI against the template and returns the variables.
    pub fn matches(&self, uri: &str) -> Option<HashMap<String, String>> {
        match_template(&self.uri_template, uri)
    }
}

/// Matches `uri` against a level-1 URI template.
pub fn match_template(template: &str, uri: &str) -> Option<HashMap<String, String>> {
    let mut vars = HashMap::new();
    let mut t = template;
    let mut u = uri;
    while !t.is_empty() {
        if let Some(rest) = t.strip_prefix('{') {
            let end = rest.find('}')?;
            let name = &rest[..end];
            t = &rest[end + 1..];
            // The variable runs to the next literal character of the template (or the end),
            // never across '/'.
            let stop = t.chars().next();
            let len = u
                .char_indices()
                .find(|&(_, c)| c == '/' || Some(c) == stop)
                .map(|(i, _)| i)
                .unwrap_or(u.len());
            if len == 0 {
                return None;
            }
            vars.insert(name.to_string(), u[..len].to_string());
            u = &u[len..];
        } else {
            let lit_len = t.find('{').unwrap_or(t.len());
            u = u.strip_prefix(&t[..lit_len])?;
            t = &t[lit_len..];
        }
    }
    u.is_empty().then_some(vars)
}

/// A prompt argument.
#[derive(Debug, Clone)]
pub struct PromptArgument {
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Whether it must be given.
    pub required: bool,
}

/// A prompt's result.
#[derive(Debug, Clone, Default)]
pub struct PromptOutput {
    /// Description.
    pub description: Option<String>,
    /// (role, content) pairs.
    pub messages: Vec<(String, Content)>,
}

impl PromptOutput {
    /// The JSON result for a revision.
    pub fn to_json(&self, rev: Revision) -> Value {
        let mut m = Map::new();
        if let Some(d) = &self.description {
            m.insert("description".into(), json!(d));
        }
        m.insert(
            "messages".into(),
            Value::Array(
                self.messages
                    .iter()
                    .map(|(role, c)| json!({"role": role, "content": c.to_json(rev)}))
                    .collect(),
            ),
        );
        Value::Object(m)
    }
}

/// A prompt template.
pub struct Prompt {
    /// Name.
    pub name: String,
    /// Title.
    pub title: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Arguments.
    pub arguments: Vec<PromptArgument>,
    pub(crate) get: PromptHandler,
    pub(crate) complete: Option<Completer>,
}

impl Prompt {
    /// A prompt rendered by `get(arguments, ctx)`. Required arguments are checked before
    /// `get` runs.
    pub fn new<F, Fut>(name: &str, description: &str, get: F) -> Self
    where
        F: Fn(Map<String, Value>, Ctx) -> Fut + 'static,
        Fut: Future<Output = HandlerResult<PromptOutput>> + 'static,
    {
        Prompt {
            name: name.into(),
            title: None,
            description: Some(description.into()),
            arguments: Vec::new(),
            get: Rc::new(move |a, ctx| Box::pin(get(a, ctx))),
            complete: None,
        }
    }
    /// Adds an argument.
    pub fn argument(mut self, name: &str, description: &str, required: bool) -> Self {
        self.arguments.push(PromptArgument {
            name: name.into(),
            description: Some(description.into()),
            required,
        });
        self
    }
    /// Sets the title.
    pub fn title(mut self, t: &str) -> Self {
        self.title = Some(t.into());
        self
    }
    /// Completion for the arguments.
    pub fn completer(
        mut self,
        f: impl Fn(&str, &str, &Map<String, Value>) -> Vec<String> + 'static,
    ) -> Self {
        self.complete = Some(Rc::new(f));
        self
    }
    /// The prompts/list entry.
    pub fn describe(&self, rev: Revision) -> Value {
        let mut m = Map::new();
        m.insert("name".into(), json!(self.name));
        if rev.has_structured_output() {
            if let Some(t) = &self.title {
                m.insert("title".into(), json!(t));
            }
        }
        if let Some(d) = &self.description {
            m.insert("description".into(), json!(d));
        }
        m.insert(
            "arguments".into(),
            Value::Array(
                self.arguments
                    .iter()
                    .map(|a| {
                        let mut am = Map::new();
                        am.insert("name".into(), json!(a.name));
                        if let Some(d) = &a.description {
                            am.insert("description".into(), json!(d));
                        }
                        am.insert("required".into(), json!(a.required));
                        Value::Object(am)
                    })
                    .collect(),
            ),
        );
        Value::Object(m)
    }
}

/// MCP log levels (RFC 5424 severities), least severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// debug
    Debug,
    /// info
    Info,
    /// notice
    Notice,
    /// warning
    Warning,
    /// error
    Error,
    /// critical
    Critical,
    /// alert
    Alert,
    /// emergency
    Emergency,
}

impl LogLevel {
    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<LogLevel> {
        Some(match s {
            "debug" => LogLevel::Debug,
            "info" => LogLevel::Info,
            "notice" => LogLevel::Notice,
            "warning" => LogLevel::Warning,
            "error" => LogLevel::Error,
            "critical" => LogLevel::Critical,
            "alert" => LogLevel::Alert,
            "emergency" => LogLevel::Emergency,
            _ => return None,
        })
    }
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Notice => "notice",
            LogLevel::Warning => "warning",
            LogLevel::Error => "error",
            LogLevel::Critical => "critical",
            LogLevel::Alert => "alert",
            LogLevel::Emergency => "emergency",
        }
    }
}

/// Limits the session core enforces.
#[derive(Debug, Clone)]
pub struct CoreLimits {
    /// Requests handled at once.
    pub in_flight_max: usize,
    /// Outstanding server-to-client requests.
    pub client_requests_max: usize,
    /// How long a server-to-client request may take.
    pub client_request_timeout: Duration,
    /// Page size for list methods.
    pub page_size: usize,
    /// Batch bound.
    pub batch_max: usize,
    /// The index of the shard the session lives on (reported in initialize's `_meta`).
    pub shard: usize,
    /// How long a tool call may run without reporting progress (`None`: no limit).
    pub tool_call_timeout: Option<Duration>,
    /// The circuit breakers' settings (`None`: disabled).
    pub breaker: Option<crate::breaker::BreakerConfig>,
}

/// A JSON value a session keeps but seldom reads (what the client said about itself),
/// held as its compact text: one small allocation instead of a map per object, strings
/// and all, for every idle session.
#[derive(Debug, Default)]
pub(crate) struct CompactJson(RefCell<Option<Box<str>>>);

impl CompactJson {
    pub(crate) fn new(v: &Value) -> Self {
        let c = CompactJson::default();
        c.set(v);
        c
    }
    /// Replaces the value (`null` is kept as nothing).
    pub(crate) fn set(&self, v: &Value) {
        *self.0.borrow_mut() = (!v.is_null()).then(|| v.to_string().into_boxed_str());
    }
    /// The value (`null` when none was set).
    pub(crate) fn get(&self) -> Value {
        self.0
            .borrow()
            .as_deref()
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or(Value::Null)
    }
}

/// State shared by a session and the handlers it runs.
pub struct SessionCore {
    /// Session id.
    pub id: SessionId,
    /// The server this session talks to.
    pub server: Rc<McpServer>,
    /// Where messages for the client go.
    pub out: Rc<dyn Outbound>,
    /// The runtime.
    pub host: Rc<dyn Host>,
    /// Limits.
    pub limits: Rc<CoreLimits>,
    pub(crate) revision: Cell<Revision>,
    /// The lowest level sent as `notifications/message`; `None` sends none.
    pub(crate) log_level: Cell<Option<LogLevel>>,
    pub(crate) client_capabilities: CompactJson,
    pub(crate) client_info: CompactJson,
    pending: RefCell<HashMap<Id, OneshotSender<Result<Value, ErrorObject>>>>,
    next_request: Cell<u64>,
}

impl SessionCore {
    /// A core for a new session.
    pub fn new(
        id: SessionId,
        server: Rc<McpServer>,
        out: Rc<dyn Outbound>,
        host: Rc<dyn Host>,
        limits: impl Into<Rc<CoreLimits>>,
    ) -> Rc<Self> {
        Rc::new(SessionCore {
            id,
            server,
            out,
            host,
            limits: limits.into(),
            revision: Cell::new(Revision::LATEST),
            log_level: Cell::new(Some(LogLevel::Debug)),
            client_capabilities: CompactJson::new(&json!({})),
            client_info: CompactJson::default(),
            pending: RefCell::new(HashMap::new()),
            next_request: Cell::new(0),
        })
    }

    /// A core for one request of a stateless revision: what a session learns at
    /// `initialize` (revision, client capabilities and info) and from `logging/setLevel`
    /// comes from the request's `_meta` instead. Without a log level in `_meta` the
    /// request gets no log notifications at all.
    pub fn stateless(
        id: SessionId,
        server: Rc<McpServer>,
        out: Rc<dyn Outbound>,
        host: Rc<dyn Host>,
        limits: impl Into<Rc<CoreLimits>>,
        revision: Revision,
        meta: &RequestMeta,
    ) -> Rc<Self> {
        debug_assert!(!revision.has_sessions());
        let core = Self::new(id, server, out, host, limits);
        core.revision.set(revision);
        core.log_level.set(meta.log_level);
        core.client_capabilities.set(&meta.client_capabilities);
        core.client_info.set(&meta.client_info);
        core
    }

    /// The negotiated revision.
    pub fn revision(&self) -> Revision {
        self.revision.get()
    }

    /// Sends a notification to the client; a full queue closes the connection (see
    /// [`crate::rt::OutQueue`]), so the error is only logged here.
    pub fn notify(&self, method: &str, params: &Value) {
        let bytes = jsonrpc::encode_notification(method, params);
        if let Err(e) = self.out.send(OutMsg::Owned(bytes)) {
            tracing::debug!(session = %self.id, method, "notification not sent: {e}");
        }
    }

    /// Routes a client's response to the request that awaits it. Returns false when no
    /// request of ours has that id (late, duplicate or unsolicited answers are dropped).
    pub fn complete_client_request(&self, id: &Id, outcome: Result<Value, ErrorObject>) -> bool {
        match self.pending.borrow_mut().remove(id) {
            Some(tx) => {
                tx.send(outcome);
                true
            }
            None => false,
        }
    }

    /// Outstanding server-to-client requests.
    pub fn client_requests_pending(&self) -> usize {
        self.pending.borrow().len()
    }
}

/// What a handler gets: progress, logging, cancellation, client requests, notifications.
#[derive(Clone)]
pub struct Ctx {
    core: Rc<SessionCore>,
    out: Rc<dyn Outbound>,
    progress_token: Option<Value>,
    cancel: CancelToken,
    /// Under a stateless revision: where client requests find their answers.
    input: Option<Rc<InputRound>>,
    /// A tool call's last sign of life: [`Ctx::progress`] sets it, and the call's timeout
    /// counts from it.
    activity: Option<Rc<Cell<Instant>>>,
}

impl Ctx {
    /// A context for one request whose notifications and server-to-client requests go to
    /// the session's outbound.
    pub fn new(core: Rc<SessionCore>, progress_token: Option<Value>, cancel: CancelToken) -> Self {
        Ctx {
            out: core.out.clone(),
            core,
            progress_token,
            cancel,
            input: None,
            activity: None,
        }
    }

    /// The context of one tool call's handler: its own cancellation `cancel` (which the
    /// caller fires on the client's cancellation, on the call's timeout, or when the call is
    /// dropped) and the clock `activity` that each progress report sets.
    pub(crate) fn for_call(mut self, cancel: CancelToken, activity: Rc<Cell<Instant>>) -> Self {
        self.cancel = cancel;
        self.activity = Some(activity);
        self
    }

    /// The request's cancellation token (fired when the client cancels it).
    pub(crate) fn cancel_token(&self) -> &CancelToken {
        &self.cancel
    }

    /// Serves [`request_client`](Self::request_client) from `round` (the stateless
    /// revision: answers come with the retried request, see [`crate::mcp::input`]).
    pub fn with_input(mut self, round: Rc<InputRound>) -> Self {
        self.input = Some(round);
        self
    }

    /// Sends the request's own messages (progress, logs, server-to-client requests) to
    /// `out` instead: on Streamable HTTP, the stream of the POST that carried the request.
    pub fn with_out(mut self, out: Rc<dyn Outbound>) -> Self {
        self.out = out;
        self
    }

    /// The session core.
    pub fn core(&self) -> &Rc<SessionCore> {
        &self.core
    }

    fn notify(&self, method: &str, params: &Value) {
        let bytes = jsonrpc::encode_notification(method, params);
        if let Err(e) = self.out.send(OutMsg::Owned(bytes)) {
            tracing::debug!(session = %self.core.id, method, "notification not sent: {e}");
        }
    }

    /// The session id.
    pub fn session_id(&self) -> SessionId {
        self.core.id
    }

    /// The negotiated revision.
    pub fn revision(&self) -> Revision {
        self.core.revision()
    }

    /// The capabilities the client declared (at initialize, or in this request's `_meta`).
    pub fn client_capabilities(&self) -> Value {
        self.core.client_capabilities.get()
    }

    /// The client's `Implementation` object (`name`, `version`, ...) from initialize or
    /// this request's `_meta`; `Null` when the client did not say.
    pub fn client_info(&self) -> Value {
        self.core.client_info.get()
    }

    /// Whether the request carried a progress token.
    pub fn wants_progress(&self) -> bool {
        self.progress_token.is_some()
    }

    /// Sends `notifications/progress` when the request carried a progress token. Either
    /// way, a tool call that reports progress is working: its timeout
    /// (`limits.tool_call_timeout_ms`) counts from the last report.
    pub fn progress(&self, progress: f64, total: Option<f64>, message: Option<&str>) {
        if let Some(a) = &self.activity {
            a.set(self.core.host.now());
        }
        let Some(token) = &self.progress_token else {
            return;
        };
        let mut p = Map::new();
        p.insert("progressToken".into(), token.clone());
        p.insert("progress".into(), json!(progress));
        if let Some(t) = total {
            p.insert("total".into(), json!(t));
        }
        if let Some(m) = message {
            p.insert("message".into(), json!(m));
        }
        self.notify("notifications/progress", &Value::Object(p));
    }

    /// Sends `notifications/message` when `level` passes the session's (or, stateless, the
    /// request's) logging level.
    pub fn log(&self, level: LogLevel, logger: Option<&str>, data: Value) {
        match self.core.log_level.get() {
            Some(min) if level >= min => {}
            _ => return,
        }
        let mut p = Map::new();
        p.insert("level".into(), json!(level.as_str()));
        if let Some(l) = logger {
            p.insert("logger".into(), json!(l));
        }
        p.insert("data".into(), data);
        self.notify("notifications/message", &Value::Object(p));
    }

    /// Whether the client cancelled this request.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Resolves when the client cancels this request.
    pub fn cancelled(&self) -> impl Future<Output = ()> + 'static {
        self.cancel.cancelled()
    }

    /// Sleeps without blocking the shard.
    pub async fn sleep(&self, d: Duration) {
        self.core.host.sleep(d).await
    }

    /// Sends `notifications/resources/updated` for `uri` to every subscriber of this server
    /// on every shard.
    pub fn resource_updated(&self, uri: &str) {
        self.core.host.resource_updated(&self.core.server.name, uri);
    }

    /// Tells every session of this server that a list changed; `kind` is "tools",
    /// "resources" or "prompts".
    pub fn list_changed(&self, kind: &str) {
        let method = format!("notifications/{kind}/list_changed");
        self.core.host.list_changed(&self.core.server.name, &method);
    }

    /// Asks the client (`sampling/createMessage`, `elicitation/create`, `roots/list`) and
    /// awaits its answer.
    ///
    /// Session revisions: a request is sent to the client, bounded by
    /// `limits.client_request_timeout_ms`. Stateless revision: the answer is taken from
    /// the retried request (see [`crate::mcp::input`]); when the client has not given it
    /// yet, this never resolves and the request is answered `input_required`, so code
    /// before this call runs again on the retry. The call is keyed by its rank among this
    /// handler's calls; use [`request_client_keyed`](Self::request_client_keyed) to name it.
    pub async fn request_client(&self, method: &str, params: Value) -> HandlerResult<Value> {
        self.ask_client(None, method, params).await
    }

    /// [`request_client`](Self::request_client) with the key the stateless revision's
    /// `inputRequests`/`inputResponses` use for this call (ignored by session revisions).
    pub async fn request_client_keyed(
        &self,
        key: &str,
        method: &str,
        params: Value,
    ) -> HandlerResult<Value> {
        self.ask_client(Some(key), method, params).await
    }

    async fn ask_client(
        &self,
        key: Option<&str>,
        method: &str,
        params: Value,
    ) -> HandlerResult<Value> {
        let rev = self.core.revision();
        let round = match (&self.input, rev.has_input_required()) {
            (Some(round), true) => Some(round.clone()),
            (None, true) => {
                let why = "the stateless revision answers client requests from an input round";
                return Err(ErrorObject::internal(format!("{method}: {why}")));
            }
            (_, false) => None,
        };
        // Keyed before anything can fail, so that ranks stay the same from round to round.
        let key = match (&round, key) {
            (Some(_), Some(k)) => k.to_string(),
            (Some(r), None) => r.auto_key(),
            (None, _) => String::new(),
        };
        let capability = match method {
            "sampling/createMessage" => Some("sampling"),
            "elicitation/create" => Some("elicitation"),
            "roots/list" => Some("roots"),
            _ => None,
        };
        if method == "elicitation/create" && !self.core.revision().has_elicitation() {
            return Err(ErrorObject::new(
                jsonrpc::code::CLIENT_REQUEST_FAILED,
                format!(
                    "elicitation needs protocol revision 2025-06-18 or later (negotiated {})",
                    self.core.revision().as_str()
                ),
            ));
        }
        if let Some(cap) = capability {
            if self.core.client_capabilities.get().get(cap).is_none() {
                if round.is_some() {
                    // The request cannot be served without it: -32021, not a failed call.
                    return Err(meta::missing_capability(
                        cap,
                        &format!("this request needs {method}"),
                    ));
                }
                return Err(ErrorObject::new(
                    jsonrpc::code::CLIENT_REQUEST_FAILED,
                    format!("the client did not declare the {cap} capability"),
                ));
            }
        }
        if let Some(round) = round {
            return match round.answer(&key, method, params)? {
                Some(answer) => Ok(answer),
                // The handler stops here; the transport answers input_required.
                None => std::future::pending().await,
            };
        }
        if self.core.pending.borrow().len() >= self.core.limits.client_requests_max {
            return Err(ErrorObject::new(
                jsonrpc::code::LIMIT_EXCEEDED,
                format!(
                    "too many server-to-client requests outstanding (limit {})",
                    self.core.limits.client_requests_max
                ),
            ));
        }
        let n = self.core.next_request.get();
        self.core.next_request.set(n + 1);
        let id = Id::Str(format!("ringmcp-{n}"));
        let (tx, rx) = oneshot();
        self.core.pending.borrow_mut().insert(id.clone(), tx);
        // Removes the pending entry however this future ends (answer, timeout, cancel).
        struct Forget(Rc<SessionCore>, Id);
        impl Drop for Forget {
            fn drop(&mut self) {
                self.0.pending.borrow_mut().remove(&self.1);
            }
        }
        let _forget = Forget(self.core.clone(), id.clone());
        let bytes = jsonrpc::encode_request(&id, method, &params);
        self.out
            .send(OutMsg::Owned(bytes))
            .map_err(|e| ErrorObject::internal(format!("cannot reach the client: {e}")))?;
        let timeout = self.core.limits.client_request_timeout;
        let host = self.core.host.clone();
        let answer = futures_lite::future::or(async { Some(rx.await) }, async move {
            host.sleep(timeout).await;
            None
        })
        .await;
        match answer {
            Some(Some(Ok(v))) => Ok(v),
            Some(Some(Err(e))) => Err(ErrorObject::new(
                jsonrpc::code::CLIENT_REQUEST_FAILED,
                format!(
                    "the client answered {method} with error {}: {}",
                    e.code, e.message
                ),
            )),
            Some(None) => Err(ErrorObject::internal("session closed")),
            None => Err(ErrorObject::new(
                jsonrpc::code::CLIENT_REQUEST_FAILED,
                format!(
                    "the client did not answer {method} within {} ms",
                    timeout.as_millis()
                ),
            )),
        }
    }
}

/// Reads a required string argument.
pub fn arg_str<'a>(args: &'a Map<String, Value>, name: &str) -> HandlerResult<&'a str> {
    args.get(name).and_then(Value::as_str).ok_or_else(|| {
        ErrorObject::invalid_params(format!("argument {name:?} (string) is required"))
    })
}

/// Reads a required numeric argument.
pub fn arg_f64(args: &Map<String, Value>, name: &str) -> HandlerResult<f64> {
    args.get(name).and_then(Value::as_f64).ok_or_else(|| {
        ErrorObject::invalid_params(format!("argument {name:?} (number) is required"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_matching() {
        let v = match_template("demo://items/{id}", "demo://items/42").unwrap();
        assert_eq!(v["id"], "42");
        assert!(match_template("demo://items/{id}", "demo://items/").is_none());
        assert!(match_template("demo://items/{id}", "demo://items/4/2").is_none());
        let v = match_template("test://template/{id}/data", "test://template/7/data").unwrap();
        assert_eq!(v["id"], "7");
        assert!(match_template("a://{x}.{y}", "a://1.2").is_some());
        assert!(match_template("a://x", "a://y").is_none());
    }

    #[test]
    fn tool_description_follows_revision() {
        let t = Tool::new("t", "d", json!({"type":"object"}), |_, _| async {
            Ok(ToolOutput::text("x"))
        })
        .output_schema(json!({"type":"object"}))
        .annotations(json!({"readOnlyHint": true}));
        assert!(t
            .describe(Revision::V2024_11_05)
            .get("outputSchema")
            .is_none());
        assert!(t
            .describe(Revision::V2024_11_05)
            .get("annotations")
            .is_none());
        assert!(t
            .describe(Revision::V2025_06_18)
            .get("outputSchema")
            .is_some());
        assert!(t
            .describe(Revision::V2025_03_26)
            .get("annotations")
            .is_some());
    }
}
