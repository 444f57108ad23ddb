//! Starting the real `sluiced` for black-box tests: the binary is found next to the test
//! executable's directory (`target/<profile>/`), started on `127.0.0.1:0`, and its bound TCP
//! address read from its `TCP: listening on ADDR` log line instead of sleeping.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running `sluiced`, killed on drop.
pub struct Sluiced {
    child: Child,
    pub tcp: SocketAddr,
    pub data: PathBuf,
}

/// `target/<profile>/<name>`, built by `cargo build --bins`.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test>-<hash>
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build it first with `cargo build --bins`",
        path.display()
    );
    path
}

impl Sluiced {
    pub fn start(extra: &[&str]) -> Sluiced {
        Sluiced::start_on("127.0.0.1:0", extra)
    }

    pub fn start_on(tcp: &str, extra: &[&str]) -> Sluiced {
        let data = std::env::temp_dir().join(format!(
            "sluice-perf-test-{}-{}",
            std::process::id(),
            unique()
        ));
        std::fs::create_dir_all(&data).unwrap();
        let mut child = Command::new(binary("sluiced"))
            .arg(format!("--tcp-address={tcp}"))
            .arg("--http-address=127.0.0.1:0")
            .arg(format!("--data-path={}", data.display()))
            .arg("--cores=1")
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sluiced");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut log = String::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("TCP: listening on ").nth(1) {
                    let _ = tx.send(Ok(addr.trim().to_owned()));
                }
                log.push_str(&line);
                log.push('\n');
            }
            let _ = tx.send(Err(log));
        });
        let received = rx.recv_timeout(Duration::from_secs(10));
        let Ok(Ok(addr)) = received else {
            // Never leave a broker behind when the test fails here.
            let _ = child.kill();
            let _ = child.wait();
            match received {
                Ok(Err(log)) => panic!("sluiced exited before listening:\n{log}"),
                _ => panic!("sluiced did not log its TCP address within 10 s"),
            }
        };
        Sluiced {
            child,
            tcp: addr.parse().unwrap(),
            data,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn addr(&self) -> String {
        self.tcp.to_string()
    }
}

impl Drop for Sluiced {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::SeqCst)
}

/// A free loopback port (bound then released; racy only against other binders).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `sluice-perf ARGS` to completion and returns its stdout (panics with its output on
/// failure).
pub fn perf(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_sluice-perf"))
        .args(args)
        .output()
        .expect("run sluice-perf");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "sluice-perf {args:?} failed:\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Runs `sluice-perf ARGS --json` and parses the report.
pub fn perf_json(args: &[&str]) -> serde_json::Value {
    let stdout = perf(&[args, &["--json", "--quiet"]].concat());
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}"))
}
