//! `input_required` results (2026-07-28, multi round-trip requests), sans-I/O.
//!
//! Under the stateless revision a server never sends a request to the client. A handler
//! still calls [`Ctx::request_client`](crate::server::Ctx::request_client) as it does for
//! the session revisions; an [`InputRound`] serves those calls instead:
//!
//! - each call has a key: the one the handler names, or its rank among the handler's
//!   calls (`input-0`, `input-1`, ...), which is stable because a retried request runs the
//!   handler again from the start;
//! - the answer comes from the verified `requestState` (answers of earlier rounds) or from
//!   the retry's `inputResponses`; an answer of the wrong shape counts as missing;
//! - a call without an answer is recorded and never resolves. The transport runs the
//!   handler against [`InputRound::needed`]: once the handler cannot go on, it is dropped
//!   and the request is answered `{resultType: "input_required", inputRequests, requestState}`,
//!   where `requestState` seals the answers used so far (see [`super::request_state`]).
//!
//! Handlers must therefore tolerate running again up to the point where they ask (what
//! they did before asking is repeated on each round).

use crate::jsonrpc::{code, ErrorObject};
use crate::mcp::request_state::{self, Binding, StateKey};
use futures_lite::future::BoxedLocal;
use serde_json::{json, Map, Value};
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;
use std::task::{Poll, Waker};

/// One run of a handler under the stateless revision: the answers it may use and the
/// input it still needs.
pub struct InputRound {
    answers: Map<String, Value>,
    used: RefCell<Map<String, Value>>,
    missing: RefCell<Map<String, Value>>,
    next_auto: Cell<u64>,
    missing_max: usize,
    waker: RefCell<Option<Waker>>,
}

/// What a round asks of the client when the handler could not finish.
#[derive(Debug, Clone, PartialEq)]
pub struct InputRequired {
    /// `inputRequests`: key -> `{method, params}`.
    pub requests: Map<String, Value>,
    /// The answers the handler used; they go into the next `requestState`.
    pub answers: Map<String, Value>,
}

impl InputRound {
    /// A round whose handler may use `answers` (earlier rounds' answers merged with this
    /// retry's `inputResponses`) and may ask for at most `missing_max` inputs at once.
    pub fn new(answers: Map<String, Value>, missing_max: usize) -> Rc<Self> {
        Rc::new(InputRound {
            answers,
            used: RefCell::new(Map::new()),
            missing: RefCell::new(Map::new()),
            next_auto: Cell::new(0),
            missing_max: missing_max.max(1),
            waker: RefCell::new(None),
        })
    }

    /// The key of the next call that names none.
    pub fn auto_key(&self) -> String {
        let n = self.next_auto.get();
        self.next_auto.set(n + 1);
        format!("input-{n}")
    }

    /// The answer to `key` when the client gave one of the right shape for `method`;
    /// otherwise records `{method, params}` under `key` as needed and returns `None`.
    pub fn answer(
        &self,
        key: &str,
        method: &str,
        params: Value,
    ) -> Result<Option<Value>, ErrorObject> {
        if let Some(a) = self.answers.get(key) {
            if answer_fits(method, a) {
                self.used.borrow_mut().insert(key.to_string(), a.clone());
                return Ok(Some(a.clone()));
            }
            tracing::debug!(
                key,
                method,
                "input response of the wrong shape: asked again"
            );
        }
        let mut missing = self.missing.borrow_mut();
        if !missing.contains_key(key) {
            if missing.len() >= self.missing_max {
                return Err(ErrorObject::new(
                    code::LIMIT_EXCEEDED,
                    format!(
                        "a request may ask the client for at most {} inputs at once (limits.client_requests_in_flight_max)",
                        self.missing_max
                    ),
                ));
            }
            missing.insert(key.to_string(), json!({"method": method, "params": params}));
        }
        drop(missing);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
        Ok(None)
    }

    /// Resolves once the handler has asked for an input the client has not given.
    pub fn needed(self: &Rc<Self>) -> impl Future<Output = ()> + 'static {
        let me = self.clone();
        std::future::poll_fn(move |cx| {
            if !me.missing.borrow().is_empty() {
                return Poll::Ready(());
            }
            *me.waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
    }

    /// What to ask the client for, once [`needed`](Self::needed) resolved.
    pub fn input_required(&self) -> InputRequired {
        InputRequired {
            requests: self.missing.borrow().clone(),
            answers: self.used.borrow().clone(),
        }
    }
}

impl InputRequired {
    /// The `input_required` result: what to ask, and the answers so far sealed into
    /// `requestState` for `binding` at `now_ms`.
    pub fn to_result(&self, key: &StateKey, binding: &Binding<'_>, now_ms: u64) -> Value {
        json!({
            "resultType": "input_required",
            "inputRequests": self.requests,
            "requestState": request_state::seal(key, binding, &self.answers, now_ms),
        })
    }
}

/// How a handler run under an [`InputRound`] ended.
pub enum Outcome {
    /// The handler finished (result or error).
    Complete(Result<Value, ErrorObject>),
    /// The handler asked for input the client has not given; it was dropped.
    InputRequired(InputRequired),
}

/// Runs a handler until it finishes or asks for an input the round does not have.
pub async fn run(
    handler: BoxedLocal<Result<Value, ErrorObject>>,
    round: Rc<InputRound>,
) -> Outcome {
    // `or` polls the handler first: input it asked for in the same poll (several calls
    // joined together, for example) is all recorded before the round is looked at.
    futures_lite::future::or(async { Outcome::Complete(handler.await) }, async {
        round.needed().await;
        Outcome::InputRequired(round.input_required())
    })
    .await
}

/// Whether `answer` has the shape of a result of `method` (a client answering with
/// something else is asked again rather than handing the handler garbage).
fn answer_fits(method: &str, answer: &Value) -> bool {
    let Some(a) = answer.as_object() else {
        return false;
    };
    match method {
        "elicitation/create" => {
            matches!(
                a.get("action").and_then(Value::as_str),
                Some("accept" | "decline" | "cancel")
            ) && a
                .get("content")
                .is_none_or(|c| c.is_object() || c.is_null())
        }
        "sampling/createMessage" => {
            a.get("role").is_some_and(Value::is_string)
                && a.get("model").is_some_and(Value::is_string)
                && a.get("content")
                    .is_some_and(|c| c.is_object() || c.is_array())
        }
        "roots/list" => a.get("roots").is_some_and(Value::is_array),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future::{block_on, or, poll_once};

    fn elicit(content: Value) -> Value {
        json!({"action": "accept", "content": content})
    }

    #[test]
    fn answers_come_from_the_round_and_missing_ones_are_recorded() {
        let mut given = Map::new();
        given.insert("user_name".into(), elicit(json!({"name": "Alice"})));
        given.insert("unused".into(), elicit(json!({})));
        let round = InputRound::new(given, 4);
        let a = round
            .answer("user_name", "elicitation/create", json!({"message": "?"}))
            .unwrap();
        assert_eq!(a, Some(elicit(json!({"name": "Alice"}))));
        assert!(block_on(poll_once(round.needed())).is_none());
        assert_eq!(
            round
                .answer("color", "elicitation/create", json!({"message": "c"}))
                .unwrap(),
            None
        );
        assert!(block_on(poll_once(round.needed())).is_some());
        let ir = round.input_required();
        assert_eq!(
            ir.requests,
            json!({"color": {"method": "elicitation/create", "params": {"message": "c"}}})
                .as_object()
                .cloned()
                .unwrap()
        );
        // Only what the handler used goes into the next state.
        assert_eq!(ir.answers.keys().collect::<Vec<_>>(), ["user_name"]);
    }

    #[test]
    fn wrong_shapes_are_asked_again() {
        let mut given = Map::new();
        given.insert("a".into(), json!(12345));
        given.insert("b".into(), json!({"action": "maybe"}));
        given.insert("c".into(), json!({"roots": "none"}));
        given.insert(
            "d".into(),
            json!({"role": "assistant", "content": {"type": "text", "text": "x"}}),
        );
        let round = InputRound::new(given, 8);
        assert_eq!(
            round.answer("a", "elicitation/create", json!({})).unwrap(),
            None
        );
        assert_eq!(
            round.answer("b", "elicitation/create", json!({})).unwrap(),
            None
        );
        assert_eq!(round.answer("c", "roots/list", json!({})).unwrap(), None);
        assert_eq!(
            round
                .answer("d", "sampling/createMessage", json!({}))
                .unwrap(),
            None
        );
        assert_eq!(round.input_required().requests.len(), 4);
        assert!(round.input_required().answers.is_empty());
    }

    #[test]
    fn asking_is_bounded() {
        let round = InputRound::new(Map::new(), 2);
        assert_eq!(round.auto_key(), "input-0");
        assert_eq!(round.auto_key(), "input-1");
        round.answer("x", "roots/list", json!({})).unwrap();
        round.answer("x", "roots/list", json!({})).unwrap();
        round.answer("y", "roots/list", json!({})).unwrap();
        let e = round.answer("z", "roots/list", json!({})).unwrap_err();
        assert_eq!(e.code, code::LIMIT_EXCEEDED);
    }

    #[test]
    fn a_handler_that_asks_is_stopped() {
        let round = InputRound::new(Map::new(), 4);
        let r = round.clone();
        let handler = async move {
            if r.answer("k", "roots/list", json!({})).unwrap().is_none() {
                std::future::pending::<()>().await;
            }
            "done"
        };
        let out = block_on(or(async { Some(handler.await) }, async {
            round.needed().await;
            None
        }));
        assert_eq!(out, None);
        assert!(round.input_required().requests.contains_key("k"));
    }
}
