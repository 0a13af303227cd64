//! The stdio transport (`ringmcp stdio`): one session on one shard, newline-delimited
//! JSON-RPC on stdin/stdout. Only MCP goes to stdout; logs go to stderr. When stdin closes,
//! requests in flight finish (up to `shutdown_grace_ms`) and the process exits.
//!
//! stdin and stdout may be pipes or terminals, which io_uring's socket path does not serve,
//! so the blocking reads and writes run on glommio's blocking thread pool.

use crate::runtime::Shard;
use crate::transport::conn::{too_long_message, Conn};
use futures_lite::FutureExt;
use std::io::{BufRead, Read, Write};
use std::rc::Rc;
use std::time::Duration;

enum Input {
    Line(Vec<u8>),
    TooLong,
    Eof,
    Failed(std::io::Error),
}

/// Reads one line of at most `max` bytes from stdin on the blocking pool.
async fn read_line(max: usize) -> Input {
    glommio::executor()
        .spawn_blocking(move || {
            let stdin = std::io::stdin();
            let mut lock = stdin.lock();
            let mut line = Vec::new();
            let limit = max as u64 + 2; // room for "\r\n"
            match (&mut lock).take(limit).read_until(b'\n', &mut line) {
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
        })
        .await
}

/// Serves one session on stdin/stdout until stdin closes or the process is stopped.
pub async fn serve(shard: Rc<Shard>, server: String) -> anyhow::Result<()> {
    let mut conn = Conn::open(&shard, &server)?;
    let writer = glommio::spawn_local(write_loop(conn.out().clone()));
    let max = shard.config.limits.max_message_bytes;
    loop {
        conn.out().has_room().await;
        if conn.out().is_closed() {
            break;
        }
        let input = async { Some(read_line(max).await) }
            .or(async {
                shard.shutdown.cancelled().await;
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
