//! One live socket: the write half, the requests waiting for their answer (by mid), and the
//! reader task that hands answers to their request and pushes to the session.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::WsError;
use super::frames::new_mid;
use crate::goofish::sign;

pub(super) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Push frames the reader may hold for the session. When the session falls behind, the reader
/// stops reading and TCP pushes back on the server: nothing is dropped. Small, because a frame
/// can be large (up to the 8 MiB read limit) and the session only falls behind when the
/// account's event handler does (see [`super::IM_EVENTS_CAPACITY`]).
pub(super) const INBOUND_FRAMES: usize = 64;
/// Poll step while a planned reconnect waits for answers in flight.
const DRAIN_STEP: Duration = Duration::from_millis(50);

/// Why a request got no usable answer.
#[derive(Debug)]
pub(super) enum RequestError {
    /// Provably never written to the socket.
    NotSent(String),
    /// Written (or possibly written); the answer did not come.
    NoAnswer(String),
}

/// Stops the reader task however the session ends (also when its future is dropped).
pub(super) struct AbortOnDrop(pub(super) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Frames the reader hands to the session.
pub(super) enum Inbound {
    Push(Value),
    End(String),
}

/// Reads frames: answers go to their waiting request, pushes to the session.
pub(super) async fn read_loop(
    mut stream: SplitStream<Ws>,
    conn: Arc<Conn>,
    inbound: mpsc::Sender<Inbound>,
) {
    let end = loop {
        let text = match stream.next().await {
            None => break "server closed the connection".to_string(),
            Some(Err(e)) => break e.to_string(),
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Close(frame))) => {
                break frame.map_or("close frame".into(), |f| {
                    format!("close frame: {}", f.reason)
                });
            }
            Some(Ok(_)) => continue,
        };
        let frame: Value = match serde_json::from_str(text.as_str()) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                tracing::warn!(
                    bytes = text.len(),
                    "IM frame is not a JSON object; ignored."
                );
                continue;
            }
        };
        let is_push = frame
            .get("lwp")
            .and_then(Value::as_str)
            .is_some_and(|l| !l.is_empty());
        if is_push {
            if inbound.send(Inbound::Push(frame)).await.is_err() {
                return;
            }
        } else {
            conn.resolve(frame);
        }
    };
    let _ = inbound.send(Inbound::End(end)).await;
}

/// One live connection: the write half and the requests waiting for answers.
pub(super) struct Conn {
    sink: tokio::sync::Mutex<SplitSink<Ws, Message>>,
    pending: Mutex<HashMap<String, oneshot::Sender<Value>>>,
    pub(super) user_id: String,
}

/// Why a write failed, and whether the frame may have left anyway.
pub(super) enum WriteError {
    Failed(String),
    TimedOut,
}

impl WriteError {
    pub(super) fn reason(&self) -> String {
        match self {
            Self::Failed(e) => e.clone(),
            Self::TimedOut => format!("write not finished within {WRITE_TIMEOUT:?}"),
        }
    }
}

impl Conn {
    pub(super) fn new(sink: SplitSink<Ws, Message>, user_id: String) -> Self {
        Self {
            sink: tokio::sync::Mutex::new(sink),
            pending: Mutex::new(HashMap::new()),
            user_id,
        }
    }

    pub(super) async fn write(&self, frame: &Value) -> Result<(), WriteError> {
        let text = frame.to_string();
        let mut sink = self.sink.lock().await;
        match tokio::time::timeout(WRITE_TIMEOUT, sink.send(Message::text(text))).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(WriteError::Failed(e.to_string())),
            Err(_) => Err(WriteError::TimedOut),
        }
    }

    /// Register interest in the answer to `mid` before the request is written.
    fn expect(&self, mid: &str) -> oneshot::Receiver<Value> {
        let (tx, rx) = oneshot::channel();
        self.lock().insert(sign::mid_key(mid).to_string(), tx);
        rx
    }

    fn forget(&self, mid: &str) {
        self.lock().remove(sign::mid_key(mid));
    }

    /// Send a request and wait for the answer with the same mid.
    pub(super) async fn request(
        &self,
        lwp: &str,
        mut headers: Value,
        body: Option<Value>,
        timeout: Duration,
    ) -> Result<Value, RequestError> {
        let mid = new_mid();
        if let Some(h) = headers.as_object_mut() {
            h.insert("mid".into(), json!(mid));
        }
        let mut frame = json!({"lwp": lwp, "headers": headers});
        if let Some(body) = body {
            frame["body"] = body;
        }
        let answer = self.expect(&mid);
        match self.write(&frame).await {
            Ok(()) => {}
            Err(WriteError::Failed(e)) => {
                self.forget(&mid);
                return Err(RequestError::NotSent(e));
            }
            Err(WriteError::TimedOut) => {
                self.forget(&mid);
                return Err(RequestError::NoAnswer("the write did not finish".into()));
            }
        }
        let result = tokio::time::timeout(timeout, answer).await;
        self.forget(&mid);
        match result {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(_)) => Err(RequestError::NoAnswer(
                "connection lost before the answer".into(),
            )),
            Err(_) => Err(RequestError::NoAnswer(format!(
                "no answer within {timeout:?}"
            ))),
        }
    }

    /// Write a heartbeat; the returned receiver completes when it is answered.
    pub(super) async fn send_heartbeat(&self) -> Result<oneshot::Receiver<Value>, WsError> {
        let mid = new_mid();
        let answer = self.expect(&mid);
        self.write(&json!({"lwp": "/!", "headers": {"mid": mid}}))
            .await
            .map_err(|e| WsError::Closed(format!("heartbeat write failed: {}", e.reason())))?;
        Ok(answer)
    }

    pub(super) fn resolve(&self, frame: Value) {
        let Some(mid) = frame.pointer("/headers/mid").and_then(Value::as_str) else {
            return;
        };
        let waiter = self.lock().remove(sign::mid_key(mid));
        match waiter {
            Some(tx) => {
                let _ = tx.send(frame);
            }
            None => tracing::debug!("IM answer for an unknown or expired request."),
        }
    }

    /// Wait (bounded) until no request waits for an answer. New sends no longer find this
    /// connection; the short first pause covers one that picked it up just before.
    pub(super) async fn drain(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        tokio::time::sleep(DRAIN_STEP).await;
        while !self.lock().is_empty() && Instant::now() < deadline {
            tokio::time::sleep(DRAIN_STEP).await;
        }
    }

    /// Wake every waiter with "connection lost".
    pub(super) fn fail_pending(&self) {
        self.lock().clear();
    }

    pub(super) async fn close(&self) {
        let mut sink = self.sink.lock().await;
        let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<Value>>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}
