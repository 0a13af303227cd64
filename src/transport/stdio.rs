//! The stdio transport (`ringmcp stdio`): one session on one shard, newline-delimited
//! JSON-RPC on stdin/stdout. Only MCP goes to stdout; logs go to stderr. When stdin closes,
//! requests in flight finish (up to `shutdown_grace_ms`) and the process exits.
//!
//! stdin and stdout may be pipes or terminals, which io_uring's socket path does not serve,
//! so the blocking reads run on a thread of their own and the writes on glommio's blocking
//! thread pool.

use crate::runtime::Shard;
use crate::transport::conn::{too_long_message, Conn};
use futures_lite::FutureExt;
use std::io::{BufRead, Read, Write};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::Duration;

enum Input {
    Line(Vec<u8>),
    TooLong,
    Eof,
    Failed(std::io::Error),
}

/// Reads stdin on a thread of its own, one line each time the session asks for one.
///
/// Not on glommio's blocking pool: that pool has one thread by default, and a read that waits
/// for the client's next line would hold it, so the writes of the responses queued behind it
/// would never run while the client keeps stdin open (an interactive client waits for the
/// response before it writes again). The thread is detached: a read that never returns
/// cannot hold up the process's exit.
struct StdinReader {
    ask: std::sync::mpsc::Sender<()>,
    slot: Arc<Mutex<Slot>>,
}

#[derive(Default)]
struct Slot {
    input: Option<Input>,
    waker: Option<Waker>,
}

impl StdinReader {
    fn spawn(max: usize) -> std::io::Result<StdinReader> {
        let (ask, asked) = std::sync::mpsc::channel::<()>();
        let slot = Arc::new(Mutex::new(Slot::default()));
        let theirs = slot.clone();
        std::thread::Builder::new()
            .name("ringmcp-stdin".into())
            .spawn(move || {
                let stdin = std::io::stdin();
                let mut lock = stdin.lock();
                while asked.recv().is_ok() {
                    let input = read_line(&mut lock, max);
                    let last = matches!(input, Input::Eof | Input::Failed(_));
                    let waker = {
                        let mut s = theirs.lock().unwrap_or_else(|e| e.into_inner());
                        s.input = Some(input);
                        s.waker.take()
                    };
                    if let Some(w) = waker {
                        w.wake();
                    }
                    if last {
                        break;
                    }
                }
            })?;
        Ok(StdinReader { ask, slot })
    }

    /// The next line (or end of input). Call again only after the previous call returned.
    async fn next(&self) -> Input {
        if self.ask.send(()).is_err() {
            return Input::Eof; // the thread has already seen the end of stdin
        }
        std::future::poll_fn(|cx| {
            let mut s = self.slot.lock().unwrap_or_else(|e| e.into_inner());
            match s.input.take() {
                Some(input) => Poll::Ready(input),
                None => {
                    s.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    }
}

/// Reads one line of at most `max` bytes (blocking).
fn read_line(lock: &mut std::io::StdinLock<'_>, max: usize) -> Input {
    let mut line = Vec::new();
    let limit = max as u64 + 2; // room for "\r\n"
    match lock.take(limit).read_until(b'\n', &mut line) {
        Ok(0) => Input::Eof,
        Ok(_) if line.last() == Some(&b'\n') => {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if line.len() > max {
                Input::TooLong
            } else {
                Input::Line(line)
            }
        }
        Ok(n) if (n as u64) < limit => Input::Line(line), // last line, no newline
        Ok(_) => {
            // Too long: skip the rest of the line so the next one can be read.
            let _ = lock.skip_until(b'\n');
            Input::TooLong
        }
        Err(e) => Input::Failed(e),
    }
}

/// Serves one session on stdin/stdout until stdin closes or the process is stopped.
pub async fn serve(shard: Rc<Shard>, server: String) -> anyhow::Result<()> {
    let mut conn = Conn::open(&shard, &server)?;
    let writer = glommio::spawn_local(write_loop(conn.out().clone()));
    let max = shard.config.limits.max_message_bytes;
    let stdin = StdinReader::spawn(max)?;
    loop {
        conn.out().has_room().await;
        if conn.out().is_closed() {
            break;
        }
        let input = async { Some(stdin.next().await) }
            .or(async {
                shard.shutdown.cancelled().await;
                None
            })
            .or(async {
                conn.out().closed().await; // stdout is gone: nobody would read an answer
                None
            })
            .await;
        match input {
            None | Some(Input::Eof) => break,
            Some(Input::Line(mut line)) => {
                if !line.iter().all(u8::is_ascii_whitespace) {
                    conn.on_frame(&mut line);
                }
            }
            Some(Input::TooLong) => {
                let (code, msg) = too_long_message(max);
                conn.send_error(code, msg.replace("; closing the connection", ""));
            }
            Some(Input::Failed(e)) => {
                tracing::error!("reading stdin failed: {e}");
                break;
            }
        }
    }
    conn.drain(Duration::from_millis(shard.config.server.shutdown_grace_ms))
        .await;
    conn.close();
    writer.await;
    Ok(())
}

async fn write_loop(out: Rc<crate::rt::OutQueue>) {
    let mut buf = Vec::new();
    loop {
        let msgs = out.drain().await;
        if msgs.is_empty() {
            break;
        }
        buf.clear();
        for m in &msgs {
            buf.extend_from_slice(m.as_bytes());
            buf.push(b'\n');
        }
        drop(msgs);
        let (back, result) = glommio::executor()
            .spawn_blocking(move || {
                let stdout = std::io::stdout();
                let mut lock = stdout.lock();
                let r = lock.write_all(&buf).and_then(|_| lock.flush());
                (buf, r)
            })
            .await;
        buf = back;
        if let Err(e) = result {
            tracing::debug!("writing stdout failed: {e}");
            out.close();
            break;
        }
    }
}
