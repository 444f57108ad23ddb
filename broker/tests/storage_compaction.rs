//! Compaction through the real binary: an abandoned channel on a topic that keeps receiving a
//! trickle of messages must not make the disk grow with *other* topics' traffic, and after a
//! SIGKILL and restart every message of the abandoned channel is still delivered.
//!
//! Method: tiny segments (64 KiB) so that reclaim and relocation happen within seconds; topic `B`
//! carries the bulk and is consumed at once; topic `A` gets one message per round and its only
//! channel has no consumer. The segment files' total size is sampled while `B` flows.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use sluice_proto::v2::{self, Command as Cmd, Frame, FrameDecoder, Name};

struct Broker {
    child: Child,
    tcp: String,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(data: &Path) -> Broker {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluiced"))
        .args([
            "--cores=1",
            "--tcp-address=127.0.0.1:0",
            "--http-address=127.0.0.1:0",
            "--max-bytes-per-file=65536",
            "--sync-timeout=100ms",
        ])
        .arg(format!("--data-path={}", data.display()))
        .stderr(Stdio::piped())
        .spawn()
        .expect("start sluiced");
    let mut stderr = child.stderr.take().expect("stderr");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    let tcp = loop {
        assert!(Instant::now() < deadline, "sluiced did not start: {seen}");
        let n = stderr.read(&mut buf).expect("read stderr");
        assert!(n > 0, "sluiced exited: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        if let Some(rest) = seen.split("TCP: listening on ").nth(1) {
            if let Some(addr) = rest
                .split_whitespace()
                .next()
                .filter(|_| rest.contains('\n'))
            {
                break addr.to_owned();
            }
        }
    };
    // Keep draining stderr so the pipe never fills.
    std::thread::spawn(move || while stderr.read(&mut buf).is_ok_and(|n| n > 0) {});
    Broker { child, tcp }
}

struct Client {
    stream: TcpStream,
    buf: BytesMut,
    frames: FrameDecoder,
}

impl Client {
    fn connect(addr: &str) -> Client {
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(v2::MAGIC_V2).unwrap();
        Client {
            stream,
            buf: BytesMut::new(),
            frames: FrameDecoder::new(1 << 20),
        }
    }

    fn send(&mut self, cmd: &Cmd) {
        let mut out = BytesMut::new();
        v2::put_command(&mut out, cmd);
        self.stream.write_all(&out).unwrap();
    }

    fn frame(&mut self) -> Frame {
        loop {
            if let Some(frame) = self.frames.decode(&mut self.buf).unwrap() {
                if frame.is_heartbeat() {
                    self.stream.write_all(b"NOP\n").unwrap();
                    continue;
                }
                return frame;
            }
            let mut chunk = [0u8; 65536];
            let n = self.stream.read(&mut chunk).expect("read");
            assert!(n > 0, "connection closed");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn ok(&mut self) {
        match self.frame() {
            Frame::Response(r) if &r[..] == b"OK" => {}
            other => panic!("expected OK, got {other:?}"),
        }
    }
}

fn segment_bytes(data: &Path) -> u64 {
    let dir: PathBuf = data.join("shard-0");
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn an_abandoned_channel_does_not_pin_other_topics_data_and_survives_a_restart() {
    let data = std::env::temp_dir().join(format!("sluice-compaction-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let rounds = 600u32;
    // One message for A every third round, all through the run.
    let a_count = rounds / 3;
    let mut peak_late = 0u64;
    let total_b_bytes;
    {
        let broker = start(&data);
        let mut abandoned = Client::connect(&broker.tcp);
        abandoned.send(&Cmd::Sub {
            topic: Name::new("A"),
            channel: Name::new("stuck"),
        });
        abandoned.ok();
        drop(abandoned);
        let mut b = Client::connect(&broker.tcp);
        b.send(&Cmd::Sub {
            topic: Name::new("B"),
            channel: Name::new("ch"),
        });
        b.ok();
        b.send(&Cmd::Rdy(2500));
        let mut publisher = Client::connect(&broker.tcp);
        let bulk: Vec<Bytes> = (0..50).map(|_| Bytes::from(vec![b'b'; 200])).collect();
        let mut received = 0u32;
        for round in 0..rounds {
            publisher.send(&Cmd::Mpub {
                topic: Name::new("B"),
                bodies: bulk.clone(),
            });
            publisher.ok();
            if round % 3 == 0 {
                let body = Bytes::from(format!("a{:05}", round / 3));
                publisher.send(&Cmd::Pub {
                    topic: Name::new("A"),
                    body,
                });
                publisher.ok();
            }
            while received < (round + 1) * 50 {
                if let Frame::Message(m) = b.frame() {
                    received += 1;
                    b.send(&Cmd::Fin(m.id));
                }
            }
            if round > rounds / 2 {
                peak_late = peak_late.max(segment_bytes(&data));
            }
        }
        total_b_bytes = u64::from(rounds) * 50 * 240;
        // The broker is killed here (Drop sends SIGKILL).
    }
    println!("B published about {total_b_bytes} bytes; segment files peaked at {peak_late} bytes");
    assert!(
        peak_late < total_b_bytes / 4,
        "disk grew with the other topic's traffic: {peak_late} bytes of segments"
    );
    let broker = start(&data);
    let mut a = Client::connect(&broker.tcp);
    a.send(&Cmd::Sub {
        topic: Name::new("A"),
        channel: Name::new("stuck"),
    });
    a.ok();
    a.send(&Cmd::Rdy(200));
    let mut bodies = std::collections::BTreeSet::new();
    while bodies.len() < a_count as usize {
        if let Frame::Message(m) = a.frame() {
            bodies.insert(m.body.clone());
            a.send(&Cmd::Fin(m.id));
        }
    }
    let expected: std::collections::BTreeSet<Bytes> = (0..a_count)
        .map(|i| Bytes::from(format!("a{i:05}")))
        .collect();
    assert_eq!(bodies, expected);
    drop(broker);
    let _ = std::fs::remove_dir_all(&data);
}
