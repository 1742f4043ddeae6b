//! Load on an HTTP/1.1 route from keep-alive connections in this process: requests/s and
//! client-side latency percentiles (the status page and statistics benches), and the status
//! page they load, on a file store as the daemon opens it.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use xianyu_shopd::clock;
use xianyu_shopd::config;
use xianyu_shopd::status::{self, StatusContext};
use xianyu_shopd::store::Store;

/// `memory` copied to `dir/state/shop.redb` and opened from there, as the daemon would open
/// it: the file store and the file's size in bytes.
pub fn file_store(memory: Store, dir: &Path) -> (Store, u64) {
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let bytes = memory
        .backup_to(&state.join("shop.redb"))
        .expect("copy to file");
    drop(memory);
    let store = Store::open(&state, clock::system()).expect("open file store");
    (store, bytes)
}

/// Runs `work` on a multi-threaded runtime, as the daemon does.
pub fn block_on<F: std::future::Future>(work: F) -> F::Output {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(work)
}

/// The status page over `store` with the config in `dir`, on a loopback port.
pub struct StatusServer {
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), status::StatusError>>,
}

impl StatusServer {
    pub async fn start(store: &Store, dir: &Path) -> Self {
        let config = config::load(dir).expect("bench config");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let ctx = StatusContext::new(store.clone(), config::handle(config));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(status::serve(listener, ctx, shutdown.clone()));
        Self {
            addr,
            shutdown,
            task,
        }
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
    }
}

/// Drive `path` from `conns` connections for `secs` seconds and print one line of figures.
pub async fn load(addr: SocketAddr, path: &str, secs: u64, conns: usize) {
    let until = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let tasks: Vec<_> = (0..conns)
        .map(|_| tokio::spawn(client(addr, path.to_string(), until)))
        .collect();
    let mut lat: Vec<Duration> = Vec::new();
    let mut bytes = 0;
    for t in tasks {
        let (l, b) = t.await.unwrap();
        lat.extend(l);
        bytes = b;
    }
    let elapsed = started.elapsed().as_secs_f64();
    lat.sort();
    let pct =
        |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)].as_secs_f64() * 1000.0;
    println!(
        "{path:<40} {:>7.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>7.2} ms  ({} requests, {} KiB/page)",
        lat.len() as f64 / elapsed,
        pct(0.50),
        pct(0.99),
        lat.last().unwrap().as_secs_f64() * 1000.0,
        lat.len(),
        bytes / 1024
    );
}

/// One keep-alive connection issuing GETs back to back until `until`; when the server ends a
/// connection (the status page answers at most 100 requests per connection) it opens another.
pub async fn client(addr: SocketAddr, path: String, until: Instant) -> (Vec<Duration>, usize) {
    let req = format!("GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n");
    let mut lat = Vec::new();
    let mut size;
    'connections: loop {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let (r, mut w) = stream.into_split();
        let mut r = BufReader::new(r);
        loop {
            let t = Instant::now();
            w.write_all(req.as_bytes()).await.unwrap();
            let (len, close) = read_response(&mut r).await;
            size = len;
            lat.push(t.elapsed());
            if Instant::now() >= until {
                break 'connections;
            }
            if close {
                continue 'connections;
            }
        }
    }
    (lat, size)
}

/// Body length, and whether the server closes the connection after this answer.
async fn read_response(r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> (usize, bool) {
    let mut line = String::new();
    let mut len = 0;
    let mut close = false;
    let mut first = true;
    loop {
        line.clear();
        r.read_line(&mut line).await.unwrap();
        if first {
            assert!(line.starts_with("HTTP/1.1 200"), "{line}");
            first = false;
        }
        if line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
        close |= lower.starts_with("connection:") && lower.contains("close");
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).await.unwrap();
    (len, close)
}
