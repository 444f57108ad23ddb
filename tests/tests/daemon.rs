//! The built daemons as a user runs them: each starts on loopback port 0, logs upstream's
//! `TCP: listening on` / `HTTP: listening on` lines with the real addresses, accepts connections
//! on both, and exits 0 on SIGTERM (nsqd's clean shutdown: stop accepting, flush, exit).

use std::net::TcpStream;
use std::time::Duration;

use sluice_tests::daemon::Daemon;

fn assert_serves_and_stops(mut daemon: Daemon) {
    for addr in [daemon.tcp_addr(), daemon.http_addr()] {
        assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
        TcpStream::connect_timeout(&addr, Duration::from_secs(3))
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}\n{}", daemon.log_tail()));
    }
    let status = daemon.terminate(Duration::from_secs(10)).unwrap();
    assert!(
        status.success(),
        "exit after SIGTERM: {status}\n{}",
        daemon.log_tail()
    );
}

#[test]
fn sluiced_listens_on_port_zero_and_exits_cleanly_on_sigterm() {
    assert_serves_and_stops(Daemon::sluiced(&[]).unwrap());
}

#[test]
fn sluice_lookupd_listens_on_port_zero_and_exits_cleanly_on_sigterm() {
    assert_serves_and_stops(Daemon::start("sluice-lookupd", &[]).unwrap());
}
