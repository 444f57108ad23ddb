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
            "sluice-client-test-{}-{}",
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

/// A TCP forwarder whose connections the test can cut, to make a client see a broker vanish
/// without restarting it (a restarted broker could not rebind a port in TIME_WAIT).
pub struct Proxy {
    pub addr: String,
    conns: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl Proxy {
    pub fn start(listen: &str, target: SocketAddr) -> Proxy {
        use std::sync::{Arc, Mutex};
        let listener = std::net::TcpListener::bind(listen).unwrap();
        let conns: Arc<Mutex<Vec<std::net::TcpStream>>> = Arc::new(Mutex::new(Vec::new()));
        let accepted = conns.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(upstream) = std::net::TcpStream::connect(target) else {
                    continue;
                };
                let mut list = accepted.lock().unwrap();
                list.push(client.try_clone().unwrap());
                list.push(upstream.try_clone().unwrap());
                pipe(client.try_clone().unwrap(), upstream.try_clone().unwrap());
                pipe(upstream, client);
            }
        });
        Proxy {
            addr: listen.to_owned(),
            conns,
        }
    }

    /// Closes every forwarded connection (both sides see the end of stream).
    pub fn cut(&self) {
        for stream in self.conns.lock().unwrap().drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

fn pipe(mut from: std::net::TcpStream, mut to: std::net::TcpStream) {
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(std::net::Shutdown::Both);
    });
}
