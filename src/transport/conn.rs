//! The glue between a transport and one session: feeds frames to the sans-I/O
//! [`Session`], sends what it answers, runs deferred handlers as shard-local tasks, and
//! takes the session out of the registry partition when the connection ends.

use crate::jsonrpc::{self, code, ErrorObject};
use crate::mcp::{Reply, Session};
use crate::rt::{OutMsg, OutQueue, Outbound};
use crate::runtime::{ConnHost, Shard};
use crate::server::SessionCore;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How often a draining connection looks at its in-flight count.
const DRAIN_POLL: Duration = Duration::from_millis(5);

/// One connection's session and outbound queue.
pub struct Conn {
    shard: Rc<Shard>,
    session: Session,
    out: Rc<OutQueue>,
    closed: bool,
}

impl Conn {
    /// A new session bound to `server` on `shard`.
    pub fn open(shard: &Rc<Shard>, server: &str) -> anyhow::Result<Conn> {
        let l = &shard.config.limits;
        let out = OutQueue::counted(
            l.outbound_queue_messages_max,
            l.outbound_queue_bytes_max,
            shard.local_metrics.clone(),
        );
        let server = shard
            .servers
            .get(server)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("server {server:?} is not hosted"))?;
        let id = shard.mint_session_id()?;
        let host = ConnHost::new(shard.clone(), out.clone());
        let core = SessionCore::new(id, server, out.clone(), host, shard.core_limits());
        let mut session = Session::new(core);
        // The session is its connection's only one: it meters the connection's messages.
        session.set_gate(shard.gate.session_gate(true));
        Ok(Conn {
            shard: shard.clone(),
            session,
            out,
            closed: false,
        })
    }

    /// The outbound queue the writer drains.
    pub fn out(&self) -> &Rc<OutQueue> {
        &self.out
    }

    /// Requests being handled.
    pub fn in_flight(&self) -> usize {
        self.session.in_flight()
    }

    /// Handles one frame.
    pub fn on_frame(&mut self, frame: &mut [u8]) {
        match self.session.on_frame(frame).settle() {
            Reply::None => {}
            Reply::Now(bytes) => {
                let _ = self.out.send(OutMsg::Owned(bytes));
            }
            Reply::Later(fut) => {
                let out = self.out.clone();
                glommio::spawn_local(async move {
                    if let Some(bytes) = fut.await {
                        let _ = out.send(OutMsg::Owned(bytes));
                    }
                })
                .detach();
            }
        }
    }

    /// Sends an error with a null id (framing errors, limits).
    pub fn send_error(&self, code: i64, message: impl Into<String>) {
        let bytes = jsonrpc::encode_error(None, &ErrorObject::new(code, message));
        let _ = self.out.send(OutMsg::Owned(bytes));
    }

    /// Stops taking requests and lets the running ones finish for up to `grace`; whatever
    /// still runs then is cancelled.
    pub async fn drain(&mut self, grace: Duration) {
        self.session.begin_shutdown();
        let deadline = Instant::now() + grace;
        while self.session.in_flight() > 0 && Instant::now() < deadline && !self.out.is_closed() {
            glommio::timer::sleep(DRAIN_POLL).await;
        }
        if self.session.in_flight() > 0 {
            tracing::debug!(
                session = %self.session.core().id,
                in_flight = self.session.in_flight(),
                "grace period over: cancelling"
            );
            self.session.cancel_all();
        }
    }

    /// Takes the session out of the registry and closes the outbound queue (the writer
    /// flushes what is queued, then stops).
    pub fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.session.cancel_all();
        self.shard.unregister_session(&self.session.core().id);
        self.out.close();
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.close();
    }
}

/// The error sent when a line is longer than `max_message_bytes`.
pub fn too_long_message(max: usize) -> (i64, String) {
    (
        code::INVALID_REQUEST,
        format!("message exceeds max_message_bytes ({max}); closing the connection"),
    )
}
