//! `tools/list` and `tools/call`. A call passes the server's and the tool's circuit
//! breakers (see [`crate::breaker`]) before its handler runs, and runs under the call
//! timeout (`limits.tool_call_timeout_ms`, counted from the call's start or its last
//! progress report); its outcome goes back to the breakers.

use super::{cacheable, list_result, page, CacheScope};
use crate::breaker::{BreakerConfig, Outcome, Ticket, Transition};
use crate::jsonrpc::{code, ErrorObject};
use crate::mcp::dispatch::{Dispatched, Request};
use crate::metrics::Reject;
use crate::rt::CancelToken;
use crate::schema;
use crate::server::{McpServer, Tool, ToolOutput};
use futures_lite::future::BoxedLocal;
use futures_lite::FutureExt;
use serde_json::{json, Map, Value};
use std::cell::Cell;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::Instant;

/// `tools/list`: the visible tools, one page at a time.
pub fn list(req: Request<'_>) -> Result<Value, ErrorObject> {
    let rev = req.core.revision();
    let visible: Vec<_> = req
        .core
        .server
        .tools
        .iter()
        .filter(|t| t.is_visible())
        .collect();
    let (range, next) = page(&req.params, visible.len(), req.core.limits.page_size)?;
    let items = visible[range].iter().map(|t| t.describe(rev)).collect();
    Ok(cacheable(
        rev,
        list_result("tools", items, next),
        CacheScope::Public,
    ))
}

/// `tools/call`: checks the arguments against the tool's input schema, then runs its handler.
pub fn call(mut req: Request<'_>) -> Dispatched {
    let rev = req.core.revision();
    let args = req.params.remove("arguments");
    let name = match req.params.get("name") {
        Some(Value::String(n)) => n.clone(),
        _ => {
            return Dispatched::Ready(Err(ErrorObject::invalid_params(
                "params.name (string) is required",
            )))
        }
    };
    let Some(tool) = req.core.server.find_tool(&name) else {
        return Dispatched::Ready(Err(ErrorObject::invalid_params(format!(
            "Unknown tool: {name}"
        ))));
    };
    let args = match args {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(v @ Value::Object(_)) => v,
        Some(_) => {
            return Dispatched::Ready(Err(ErrorObject::invalid_params(
                "params.arguments must be an object",
            )))
        }
    };
    let validator = tool
        .validator
        .get_or_init(|| schema::Validator::compile(&tool.input_schema));
    if let Err(why) = validator.check(&args) {
        let msg = format!("invalid arguments for tool {}: {why}", tool.name);
        return Dispatched::Ready(if rev.validation_errors_as_tool_results() {
            Ok(ToolOutput::error(msg).to_json(rev))
        } else {
            Err(ErrorObject::invalid_params(msg))
        });
    }
    let Value::Object(args) = args else {
        unreachable!("arguments were checked to be an object")
    };
    let core = req.core;
    let host = core.host.clone();
    let now = host.now();
    let tickets = match &core.limits.breaker {
        None => None,
        Some(cfg) => match admit(&core.server, tool, cfg, now) {
            Ok(t) => Some(t),
            Err(e) => {
                host.reject(Reject::CircuitOpen);
                return Dispatched::Ready(Err(e));
            }
        },
    };
    // The handler gets a token of its own: the client's cancellation fires it, and so do
    // the call's timeout and the call being dropped, none of which the session must take
    // for a client's cancellation (that one is answered with silence).
    let client_cancel = req.ctx.cancel_token().clone();
    let call_cancel = CancelToken::new();
    let activity = Rc::new(Cell::new(now));
    let ctx = req.ctx.for_call(call_cancel.clone(), activity.clone());
    let handler = (tool.handler)(args, ctx);
    let timeout = core.limits.tool_call_timeout;
    let session = core.id;
    let server = core.server.name.clone();
    // Made here, not in the future: a call dropped before its first poll cancels too.
    let guard = CancelOnDrop(Some(call_cancel.clone()));
    Dispatched::Pending(Box::pin(async move {
        // The whole guard moves into the future (not just its field).
        let guard = guard;
        let ended = run(
            handler,
            &client_cancel,
            &call_cancel,
            timeout,
            &activity,
            &*host,
        )
        .await;
        guard.disarm();
        let (result, outcome) = match ended {
            Ended::Returned(Ok(out)) => (Ok(out.to_json(rev)), Outcome::Success),
            Ended::Returned(Err(e)) => {
                let outcome = if blames_caller(e.code) {
                    Outcome::Neutral
                } else {
                    Outcome::Failure
                };
                (Err(e), outcome)
            }
            Ended::Panicked(what) => {
                tracing::error!(%session, %server, tool = %name, "tool handler panicked: {what}");
                let e = ErrorObject::internal("internal error: the tools/call handler failed");
                (Err(e), Outcome::Failure)
            }
            Ended::TimedOut => {
                host.reject(Reject::ToolTimeout);
                let ms = timeout.map_or(0, |t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX));
                tracing::debug!(%session, %server, tool = %name, "tool call timed out after {ms} ms: cancelled");
                let e = ErrorObject::new(
                    code::TOOL_TIMEOUT,
                    format!("tool {name} did not finish within {ms} ms (limits.tool_call_timeout_ms) and was cancelled"),
                )
                .with_data(json!({"timeoutMs": ms}));
                (Err(e), Outcome::Failure)
            }
        };
        // A call the client cancelled says nothing about the tool (its answer is dropped).
        let outcome = if client_cancel.is_cancelled() {
            Outcome::Neutral
        } else {
            outcome
        };
        if let Some((for_server, for_tool)) = tickets {
            let now = host.now();
            if let Some(t) = for_server.finish(outcome, now) {
                log_transition(&server, None, t);
            }
            if let Some(t) = for_tool.finish(outcome, now) {
                log_transition(&server, Some(&name), t);
            }
        }
        result
    }))
}

/// Asks the server's breaker, then the tool's. A refusal is -32007 with `data.retryAfterMs`
/// and which breaker refused (`data.scope`: "server" or "tool").
fn admit(
    server: &McpServer,
    tool: &Tool,
    cfg: &BreakerConfig,
    now: Instant,
) -> Result<(Ticket, Ticket), ErrorObject> {
    let refused = |scope: &str, retry_after_ms: u64| {
        let what = match scope {
            "server" => format!("server {}", server.name),
            _ => format!("tool {} of server {}", tool.name, server.name),
        };
        ErrorObject::new(
            code::CIRCUIT_OPEN,
            format!("circuit breaker open for {what}: too many of its recent calls failed; retry after {retry_after_ms} ms"),
        )
        .with_data(json!({
            "retryAfterMs": retry_after_ms,
            "scope": scope,
            "server": server.name,
            "tool": tool.name,
        }))
    };
    let for_server =
        Ticket::admit(&server.breaker, now, cfg).map_err(|ms| refused("server", ms))?;
    // A refusal here drops the server's ticket unfinished: neutral, as if never admitted.
    let for_tool = Ticket::admit(&tool.breaker, now, cfg).map_err(|ms| refused("tool", ms))?;
    Ok((for_server, for_tool))
}

/// Errors that say the caller asked wrongly (or the server is stopping), not that the tool
/// is failing: they do not count against a breaker.
fn blames_caller(error_code: i64) -> bool {
    matches!(
        error_code,
        code::INVALID_REQUEST
            | code::INVALID_PARAMS
            | code::CLIENT_REQUEST_FAILED
            | code::MISSING_REQUIRED_CLIENT_CAPABILITY
            | code::SHUTTING_DOWN
    )
}

fn log_transition(server: &str, tool: Option<&str>, t: Transition) {
    let which = match tool {
        Some(tool) => format!("tool {tool} of server {server}"),
        None => format!("server {server}"),
    };
    match t {
        Transition::Opened { failures, calls } => tracing::warn!(
            "circuit breaker opened for {which}: {failures} of its last {calls} calls failed"
        ),
        Transition::Reopened => {
            tracing::warn!("circuit breaker reopened for {which}: a probe call failed")
        }
        Transition::Closed => {
            tracing::info!("circuit breaker closed for {which}: the probe calls succeeded")
        }
    }
}

/// How a handler run ended.
enum Ended {
    Returned(Result<ToolOutput, ErrorObject>),
    Panicked(String),
    TimedOut,
}

/// Fires the handler's cancellation if the call is dropped before it ends (the client
/// went away, the connection closed).
struct CancelOnDrop(Option<CancelToken>);

impl CancelOnDrop {
    /// The call ended: nothing to cancel.
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            t.cancel();
        }
    }
}

/// Runs the handler to its end, its panic, or its timeout. The timer is armed only when
/// the handler does not finish at its first poll (most tools answer at once), and re-armed
/// when it fires after a progress report moved the deadline. On timeout the handler's
/// cancellation fires, then the handler is dropped.
async fn run(
    handler: BoxedLocal<Result<ToolOutput, ErrorObject>>,
    client_cancel: &CancelToken,
    call_cancel: &CancelToken,
    timeout: Option<std::time::Duration>,
    activity: &Cell<Instant>,
    host: &dyn crate::rt::Host,
) -> Ended {
    let mut handler = AssertUnwindSafe(handler).catch_unwind();
    let mut client = client_cancel.cancelled();
    // The timer and the activity it was armed for.
    let mut timer: Option<(Instant, BoxedLocal<()>)> = None;
    let ended = std::future::poll_fn(|cx| {
        if client_cancel.is_cancelled() && !call_cancel.is_cancelled() {
            call_cancel.cancel();
        }
        if let Poll::Ready(r) = Pin::new(&mut handler).poll(cx) {
            return Poll::Ready(match r {
                Ok(r) => Ended::Returned(r),
                Err(panic) => Ended::Panicked(
                    panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "unknown panic".into()),
                ),
            });
        }
        // The handler waits: from now on a cancellation by the client must wake us (asked
        // only now, so a tool that answers at once costs the token nothing). If it came in
        // the meantime, pass it on and poll again.
        if Pin::new(&mut client).poll(cx).is_ready() && !call_cancel.is_cancelled() {
            call_cancel.cancel();
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let Some(limit) = timeout else {
            return Poll::Pending;
        };
        // Arm (the first time, or again once the timer fired after a progress report moved
        // the deadline), then wait; a timer re-armed in this same poll that is already due
        // means the deadline has passed.
        let mut rearmed = false;
        loop {
            let (since, t) = timer.get_or_insert_with(|| {
                let since = activity.get();
                let wait = (since + limit).saturating_duration_since(host.now());
                (since, host.sleep(wait))
            });
            if t.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            if rearmed || activity.get() == *since {
                return Poll::Ready(Ended::TimedOut);
            }
            timer = None;
            rearmed = true;
        }
    })
    .await;
    if matches!(ended, Ended::TimedOut) {
        call_cancel.cancel();
    }
    drop(handler);
    ended
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breaker::BreakerConfig;
    use crate::mcp::dispatch::dispatch;
    use crate::rt::{Host, OutMsg, Outbound, SendError};
    use crate::server::{CoreLimits, Ctx, SessionCore};
    use futures_lite::future::{block_on, poll_once};
    use ringmcp_shards::SessionId;
    use std::cell::RefCell;
    use std::time::Duration;

    /// A host whose clock moves only when the test says so; its sleeps end when the clock
    /// reaches them. It records the refusals it is told of.
    #[derive(Clone)]
    struct Manual(Rc<ManualState>);

    struct ManualState {
        now: Cell<Instant>,
        rejects: RefCell<Vec<Reject>>,
    }

    impl Manual {
        fn new() -> Self {
            Manual(Rc::new(ManualState {
                now: Cell::new(Instant::now()),
                rejects: RefCell::new(Vec::new()),
            }))
        }
        fn advance(&self, ms: u64) {
            self.0.now.set(self.0.now.get() + Duration::from_millis(ms));
        }
        fn rejects(&self) -> Vec<Reject> {
            self.0.rejects.borrow().clone()
        }
    }

    impl Outbound for Manual {
        fn send(&self, _: OutMsg) -> Result<(), SendError> {
            Ok(())
        }
    }

    impl Host for Manual {
        fn sleep(&self, d: Duration) -> BoxedLocal<()> {
            let state = self.0.clone();
            let until = state.now.get() + d;
            Box::pin(std::future::poll_fn(move |_| {
                if state.now.get() >= until {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            }))
        }
        crate::rt::host_without_registry!();
        fn now(&self) -> Instant {
            self.0.now.get()
        }
        fn reject(&self, why: Reject) {
            self.0.rejects.borrow_mut().push(why);
        }
    }

    #[derive(Clone, Copy, PartialEq, Debug)]
    enum Mode {
        Ok,
        Error,
        IsError,
        BadArgs,
        Panic,
        Hang,
    }

    struct Fixture {
        host: Manual,
        core: Rc<SessionCore>,
        mode: Rc<Cell<Mode>>,
        /// The context of the last `flaky` call.
        last_ctx: Rc<RefCell<Option<Ctx>>>,
    }

    fn fixture(timeout_ms: Option<u64>) -> Fixture {
        let mode = Rc::new(Cell::new(Mode::Ok));
        let last_ctx: Rc<RefCell<Option<Ctx>>> = Rc::new(RefCell::new(None));
        let (m, slot) = (mode.clone(), last_ctx.clone());
        let server = McpServer::new("s", "1")
            .tool(Tool::new(
                "flaky",
                "fails as told",
                json!({"type": "object"}),
                move |_, ctx| {
                    let mode = m.get();
                    *slot.borrow_mut() = Some(ctx);
                    async move {
                        match mode {
                            Mode::Ok => Ok(ToolOutput::text("ok")),
                            Mode::Error => Err(ErrorObject::internal("failed")),
                            Mode::IsError => Ok(ToolOutput::error("the tool said no")),
                            Mode::BadArgs => Err(ErrorObject::invalid_params("bad")),
                            Mode::Panic if std::hint::black_box(true) => panic!("asked to"),
                            _ => std::future::pending().await,
                        }
                    }
                },
            ))
            .tool(Tool::new(
                "steady",
                "always works",
                json!({"type": "object"}),
                |_, _| async { Ok(ToolOutput::text("steady")) },
            ))
            .tool(Tool::new(
                "stepper",
                "five steps of 300 ms, reporting progress after each",
                json!({"type": "object"}),
                |_, ctx| async move {
                    for i in 1..=5 {
                        ctx.sleep(Duration::from_millis(300)).await;
                        ctx.progress(f64::from(i), Some(5.0), None);
                    }
                    Ok(ToolOutput::text("done"))
                },
            ));
        let host = Manual::new();
        let limits = CoreLimits {
            in_flight_max: 8,
            client_requests_max: 4,
            client_request_timeout: Duration::from_secs(60),
            page_size: 100,
            batch_max: 8,
            shard: 0,
            tool_call_timeout: timeout_ms.map(Duration::from_millis),
            breaker: Some(BreakerConfig {
                window: Duration::from_secs(10),
                min_calls: 4,
                error_ratio: 0.5,
                open: Duration::from_millis(1000),
                half_open_probes: 1,
            }),
        };
        let core = SessionCore::new(
            SessionId::from_bytes([7; 16]),
            Rc::new(server),
            Rc::new(host.clone()),
            Rc::new(host.clone()),
            limits,
        );
        Fixture {
            host,
            core,
            mode,
            last_ctx,
        }
    }

    impl Fixture {
        /// Starts a call; `Err` holds an answer given at once.
        fn start(
            &self,
            tool: &str,
            cancel: &CancelToken,
        ) -> Result<BoxedLocal<Result<Value, ErrorObject>>, Result<Value, ErrorObject>> {
            let req = Request {
                core: &self.core,
                params: json!({"name": tool, "arguments": {}})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
                ctx: Ctx::new(self.core.clone(), None, cancel.clone()),
            };
            match dispatch(req, "tools/call") {
                Dispatched::Ready(r) => Err(r),
                Dispatched::Pending(f) => Ok(f),
            }
        }

        /// Starts a call that must wait.
        fn pending(
            &self,
            tool: &str,
            cancel: &CancelToken,
        ) -> BoxedLocal<Result<Value, ErrorObject>> {
            match self.start(tool, cancel) {
                Ok(f) => f,
                Err(r) => panic!("{tool} answered at once: {r:?}"),
            }
        }

        /// Calls a tool that answers without waiting.
        fn call(&self, tool: &str, mode: Mode) -> Result<Value, ErrorObject> {
            self.mode.set(mode);
            match self.start(tool, &CancelToken::new()) {
                Err(r) => r,
                Ok(mut f) => match block_on(poll_once(&mut f)) {
                    Some(r) => r,
                    None => panic!("{tool} did not answer at once"),
                },
            }
        }
    }

    fn refused(r: Result<Value, ErrorObject>, scope: &str) -> u64 {
        let e = r.expect_err("refused");
        assert_eq!(e.code, code::CIRCUIT_OPEN, "{e:?}");
        let data = e.data.expect("data");
        assert_eq!(data["scope"], scope, "{data}");
        data["retryAfterMs"].as_u64().expect("retryAfterMs")
    }

    #[test]
    fn a_failing_tool_opens_its_breaker_then_a_probe_closes_it() {
        let f = fixture(None);
        for _ in 0..6 {
            f.call("steady", Mode::Ok).unwrap();
        }
        for _ in 0..4 {
            assert_eq!(
                f.call("flaky", Mode::Error).unwrap_err().code,
                code::INTERNAL_ERROR
            );
        }
        // 4 of 4 flaky calls failed: its breaker is open. The server's saw 4 of 10.
        assert_eq!(refused(f.call("flaky", Mode::Ok), "tool"), 1000);
        assert_eq!(
            f.call("steady", Mode::Ok).unwrap()["content"][0]["text"],
            "steady"
        );
        assert_eq!(f.host.rejects(), vec![Reject::CircuitOpen]);
        f.host.advance(400);
        assert_eq!(refused(f.call("flaky", Mode::Ok), "tool"), 600);
        // Half-open after open_ms: one probe; it succeeds and the breaker closes.
        f.host.advance(600);
        assert!(f.call("flaky", Mode::Ok).is_ok());
        for _ in 0..3 {
            assert!(f.call("flaky", Mode::Error).is_err());
        }
        assert_eq!(
            f.call("flaky", Mode::Ok).unwrap()["content"][0]["text"],
            "ok",
            "closed with an empty window: 3 failures are not enough"
        );
    }

    #[test]
    fn a_failed_probe_reopens_and_the_server_breaker_covers_every_tool() {
        let f = fixture(None);
        for _ in 0..4 {
            assert!(f.call("flaky", Mode::Panic).is_err());
        }
        // Every call of the server failed: both breakers are open.
        assert_eq!(refused(f.call("steady", Mode::Ok), "server"), 1000);
        assert_eq!(refused(f.call("flaky", Mode::Ok), "server"), 1000);
        f.host.advance(1000);
        // The server's probe goes through steady and closes the server's breaker; flaky's
        // own breaker is still open... until its own probe.
        assert!(f.call("steady", Mode::Ok).is_ok());
        assert!(f.call("flaky", Mode::Error).is_err());
        assert_eq!(refused(f.call("flaky", Mode::Ok), "tool"), 1000);
        assert!(f.call("steady", Mode::Ok).is_ok());
    }

    #[test]
    fn tool_results_with_is_error_and_the_callers_mistakes_do_not_count() {
        let f = fixture(None);
        for _ in 0..10 {
            let r = f.call("flaky", Mode::IsError).unwrap();
            assert_eq!(r["isError"], true);
            assert_eq!(
                f.call("flaky", Mode::BadArgs).unwrap_err().code,
                code::INVALID_PARAMS
            );
        }
        assert!(f.call("flaky", Mode::Ok).is_ok());
        assert!(f.host.rejects().is_empty());
    }

    #[test]
    fn a_call_past_its_timeout_is_cancelled_and_answered_with_32008() {
        let f = fixture(Some(500));
        f.mode.set(Mode::Hang);
        let mut call = f.pending("flaky", &CancelToken::new());
        assert!(block_on(poll_once(&mut call)).is_none());
        let ctx = f.last_ctx.borrow().clone().expect("handler ran");
        f.host.advance(499);
        assert!(block_on(poll_once(&mut call)).is_none());
        assert!(!ctx.is_cancelled());
        f.host.advance(1);
        let e = block_on(poll_once(&mut call))
            .expect("timed out")
            .unwrap_err();
        assert_eq!(e.code, code::TOOL_TIMEOUT);
        assert_eq!(e.data, Some(json!({"timeoutMs": 500})));
        assert!(ctx.is_cancelled(), "the handler's cancellation fired");
        assert_eq!(f.host.rejects(), vec![Reject::ToolTimeout]);
        // Timeouts are failures: three more and the breakers open (every call of this
        // server failed, so the server's opens too, and it is asked first).
        for _ in 0..3 {
            let mut call = f.pending("flaky", &CancelToken::new());
            assert!(block_on(poll_once(&mut call)).is_none());
            f.host.advance(500);
            assert!(block_on(poll_once(&mut call)).is_some());
        }
        refused(f.call("flaky", Mode::Ok), "server");
    }

    #[test]
    fn progress_reports_push_the_timeout_back() {
        let f = fixture(Some(500));
        let mut call = f.pending("stepper", &CancelToken::new());
        // Five steps of 300 ms: 1.5 s in all, never 500 ms without a report.
        for _ in 0..5 {
            assert!(block_on(poll_once(&mut call)).is_none());
            f.host.advance(300);
        }
        let r = block_on(poll_once(&mut call)).expect("done").unwrap();
        assert_eq!(r["content"][0]["text"], "done");
        assert!(f.host.rejects().is_empty());
    }

    #[test]
    fn a_cancelled_or_dropped_call_cancels_its_handler_and_is_not_counted() {
        let f = fixture(Some(500));
        for _ in 0..4 {
            f.mode.set(Mode::Hang);
            let token = CancelToken::new();
            let mut call = f.pending("flaky", &token);
            assert!(block_on(poll_once(&mut call)).is_none());
            let ctx = f.last_ctx.borrow().clone().expect("handler ran");
            token.cancel();
            assert!(block_on(poll_once(&mut call)).is_none());
            assert!(
                ctx.is_cancelled(),
                "the client's cancellation reached the handler"
            );
            drop(call);
        }
        f.mode.set(Mode::Hang);
        let call = f.pending("flaky", &CancelToken::new());
        let ctx = f.last_ctx.borrow().clone().expect("handler ran");
        drop(call);
        assert!(ctx.is_cancelled(), "dropping the call cancels its handler");
        assert!(f.call("flaky", Mode::Ok).is_ok(), "none of those counted");
        assert!(f.host.rejects().is_empty());
    }
}
