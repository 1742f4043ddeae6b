//! Hot-reload latency: the time from an editor-style save of `products.yaml` (write a temp file,
//! rename it over the original) to `/api/status` answering with the new config version.
//!
//! Runs the real watcher, reloader and status server on a temp config dir; 20 saves; prints
//! the median and the worst. `cargo bench --bench reload_latency`

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use xianyu_shopd::clock;
use xianyu_shopd::config::{self, reload::Reloader, watch};
use xianyu_shopd::status::{self, StatusContext};
use xianyu_shopd::store::Store;

const PIPELINE: &str = "accounts:\n  - id: main\n    cookies_env: BENCH_COOKIES\nstatus: { listen: \"127.0.0.1:0\" }\npipeline:\n  - ingest: {}\n  - classify: {}\n  - stock-check: {}\n  - ship: {}\n";
const SAVES: usize = 20;

fn products(n: usize) -> String {
    format!(
        "products:\n  - item_id: \"700000000001\"\n    title: 基准测试实物 {n}\n    category: physical\n"
    )
}

async fn status_version(addr: std::net::SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"GET /api/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).await.unwrap();
    let json = body.split("\r\n\r\n").nth(1).unwrap_or("");
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    v["config"]["version"].as_str().unwrap_or("").to_string()
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pipeline.yaml"), PIPELINE).unwrap();
        std::fs::write(dir.path().join("products.yaml"), products(0)).unwrap();
        let handle = config::handle(config::load(dir.path()).expect("bench config"));
        let store = Store::open(&dir.path().join("state"), clock::system()).unwrap();
        let reloader = Arc::new(Reloader::new(
            dir.path().to_path_buf(),
            handle.clone(),
            clock::system(),
        ));
        let shutdown = CancellationToken::new();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(status::serve(
            listener,
            StatusContext::new(store, handle.clone()),
            shutdown.clone(),
        ));
        tokio::spawn(watch::run(
            reloader,
            dir.path().to_path_buf(),
            dir.path().join("state"),
            shutdown.clone(),
            |_, _| {},
        ));
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut samples = Vec::new();
        for n in 1..=SAVES {
            let before = status_version(addr).await;
            let tmp = dir.path().join(".products.yaml.swp");
            std::fs::write(&tmp, products(n)).unwrap();
            let saved = Instant::now();
            std::fs::rename(&tmp, dir.path().join("products.yaml")).unwrap();
            while status_version(addr).await == before {
                assert!(
                    saved.elapsed() < Duration::from_secs(10),
                    "save {n} never took effect"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            samples.push(saved.elapsed());
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        samples.sort();
        println!(
            "reload latency over {SAVES} atomic saves: median {:?}, worst {:?}",
            samples[SAVES / 2],
            samples[SAVES - 1]
        );
        shutdown.cancel();
    });
}
