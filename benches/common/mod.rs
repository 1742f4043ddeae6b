//! What the daemon benches share: their knobs, the fake shop's seller, the accounts of a
//! config directory, and the release daemon run as a child process whose memory is read.

#![allow(dead_code)]

pub mod http_load;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use xianyu_shopd::fake::FakeGoofish;

pub const SELLER: &str = "2202640918079";
pub const ITEM: &str = "900000000001";
/// Waiting for connections and for answers; generous because the machine may be busy.
pub const WAIT: Duration = Duration::from_secs(30);

/// A bench knob from the environment (`BENCH_…`), else its default.
pub fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Every account in `users` registered, synced and live on the fake.
pub fn all_connected(fake: &FakeGoofish, users: &[String]) -> bool {
    users.iter().all(|u| fake.stats(u).connected(1))
}

/// Runs `act` on a blocking thread and times it up to the fake's next send by [`SELLER`]
/// (polled every 100 µs, no async wake-ups in the measurement); `None` after [`WAIT`].
pub async fn time_to_next_send(
    fake: &FakeGoofish,
    act: impl FnOnce(&FakeGoofish) + Send + 'static,
) -> anyhow::Result<Option<Duration>> {
    let before = fake.stats(SELLER).sends;
    let f = fake.clone();
    Ok(tokio::task::spawn_blocking(move || {
        let t0 = Instant::now();
        act(&f);
        loop {
            if f.stats(SELLER).sends > before {
                return Some(t0.elapsed());
            }
            if t0.elapsed() > WAIT {
                return None;
            }
            std::thread::sleep(Duration::from_micros(100));
        }
    })
    .await?)
}

/// `n` sellers on the fake: their user ids, and `(account id, cookies)` for the config.
pub fn sellers(fake: &FakeGoofish, n: usize) -> (Vec<String>, Vec<(String, String)>) {
    (0..n)
        .map(|i| {
            let user = format!("22026409{:05}", 18079 + i);
            let cookies = fake.add_seller(&user, &format!("基准小店{i}"));
            (user, (format!("acc{i}"), cookies))
        })
        .unzip()
}

/// The head of `pipeline.yaml`: the accounts (their cookies written to `state/`), the
/// marketplace pointing at `fake` with `timings` added (empty: the defaults), the status
/// page on port 0.
pub fn accounts_yaml(
    dir: &Path,
    fake: &FakeGoofish,
    accounts: &[(String, String)],
    timings: &str,
) -> anyhow::Result<String> {
    let state = dir.join("state");
    std::fs::create_dir_all(&state)?;
    let mut yaml = String::from("accounts:\n");
    for (id, cookies) in accounts {
        std::fs::write(state.join(format!("cookies-{id}.txt")), cookies)?;
        yaml.push_str(&format!(
            "  - id: {id}\n    cookies_file: state/cookies-{id}.txt\n"
        ));
    }
    let extra = if timings.is_empty() {
        String::new()
    } else {
        format!(", {timings}")
    };
    yaml.push_str(&format!(
        "marketplace: {{ mtop_url: \"{}\", ws_url: \"{}\"{extra} }}\nstatus: {{ listen: \"127.0.0.1:0\" }}\n",
        fake.mtop_base(),
        fake.ws_url()
    ));
    Ok(yaml)
}

/// `target/release/xianyu-shopd`: Cargo's path for benches, else next to the bench binary
/// (`target/release/deps/<bench>-…` → `target/release/xianyu-shopd`).
pub fn daemon_binary() -> Option<PathBuf> {
    if let Some(p) = option_env!("CARGO_BIN_EXE_xianyu-shopd").map(PathBuf::from)
        && p.is_file()
    {
        return Some(p);
    }
    let exe = std::env::current_exe().ok()?;
    exe.ancestors()
        .skip(1)
        .take(3)
        .map(|d| d.join("xianyu-shopd"))
        .find(|p| p.is_file())
}

/// `xianyu-shopd run` on `dir`, its log in `dir/daemon.log`; killed when dropped, so an early
/// return never leaves a daemon behind.
pub struct RunningDaemon {
    pub child: Child,
    log: PathBuf,
}

impl RunningDaemon {
    pub fn start(bin: &Path, dir: &Path) -> anyhow::Result<Self> {
        let log = dir.join("daemon.log");
        let child = Command::new(bin)
            .arg("--config-dir")
            .arg(dir)
            .arg("run")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        Ok(Self { child, log })
    }

    /// The last ten lines of its log, newest first.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        log.lines().rev().take(10).collect::<Vec<_>>().join("\n")
    }

    /// `(VmRSS, VmHWM)` in KiB from `/proc/<pid>/status`.
    pub fn memory_kib(&self) -> anyhow::Result<(u64, u64)> {
        let pid = self.child.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let kib = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
                .with_context(|| format!("no {name} in /proc/{pid}/status"))
        };
        Ok((kib("VmRSS:")?, kib("VmHWM:")?))
    }

    /// An error if the daemon has already exited.
    pub fn still_running(&mut self) -> anyhow::Result<()> {
        match self.child.try_wait()? {
            Some(status) => anyhow::bail!("the daemon exited early: {status}"),
            None => Ok(()),
        }
    }
}

impl Drop for RunningDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
