//! The pages render with the cluster's data, charts fill from the sampled history, an
//! unreachable node is shown as such while the page still renders, `--base-path` nests
//! everything, and (only where Debian's `chromium` is installed) a headless browser renders the
//! pages to screenshots in `target/admin-screenshots/`.
//!
//! Method: real `sluice-lookupd` and `sluiced` processes on loopback; pages are fetched over
//! HTTP and checked for the figures the brokers report.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{broker, eventually, get, get_json, post_ok, Admin, Cluster};

fn page(addr: std::net::SocketAddr, path: &str) -> String {
    let reply = get(addr, path);
    assert_eq!(reply.status, 200, "GET {path}: {}", reply.body);
    assert_eq!(
        reply.header("Content-Type"),
        Some("text/html; charset=utf-8")
    );
    assert!(reply.body.starts_with("<!DOCTYPE html>"), "{}", reply.body);
    assert!(reply.body.trim_end().ends_with("</html>"));
    reply.body
}

#[test]
fn every_page_renders_the_clusters_figures() {
    let cluster = Cluster::start();
    let admin = cluster.admin(&[]);
    let a = admin.addr;
    let node = cluster.node(0);

    let topics = page(a, "/");
    assert!(topics.contains("href=\"/topics/t1\""), "{topics}");
    assert!(page(a, "/topics").contains("href=\"/topics/t1\""));

    let topic = page(a, "/topics/t1");
    assert!(topic.contains("<h1>Topic t1"), "{topic}");
    assert!(
        topic.contains(&format!("href=\"/nodes/{node}\"")),
        "{topic}"
    );
    assert!(topic.contains("href=\"/topics/t1/c1\""));
    assert!(
        topic.contains(">Tombstone<") && topic.contains(">Pause<") && topic.contains(">Delete<")
    );
    assert!(topic.contains("<svg class=\"chart\""));

    let channel = page(a, "/topics/t1/c1");
    assert!(channel.contains("<h1>Channel c1"), "{channel}");
    assert!(channel.contains("No clients connected."));
    assert!(channel.contains(">Empty<"));
    assert!(channel.contains("data-confirm=\"Pause channel t1/c1?\""));

    let nodes = page(a, "/nodes");
    assert!(
        nodes.contains(&node) && nodes.contains(&cluster.node(1)),
        "{nodes}"
    );
    let one = page(a, &format!("/nodes/{node}"));
    assert!(one.contains(&format!("<h1>Node {node}</h1>")), "{one}");
    assert!(one.contains("1 topics · 1 messages · 0 clients"), "{one}");

    let lookup = page(a, "/lookup");
    assert!(lookup.contains("<form class=\"create\">"), "{lookup}");
    assert!(lookup.contains("href=\"/topics/t1/c1\""), "{lookup}");
    let counter = page(a, "/counter");
    assert!(counter.contains("id=\"counter\""));

    let js = get(a, "/static/app.js");
    assert_eq!(js.status, 200);
    assert!(js
        .header("Content-Type")
        .unwrap()
        .starts_with("application/javascript"));
    assert!(js.body.contains("data-url"));
    assert_eq!(get(a, "/static/style.css").status, 200);
    assert_eq!(get(a, "/static/nope.js").status, 404);
    // Names from the cluster are escaped.
    let missing = page(a, "/topics/%3Cb%3E");
    assert!(
        missing.contains("Topic &lt;b&gt;") && !missing.contains("<b>"),
        "{missing}"
    );
}

#[test]
fn charts_draw_the_sampled_history() {
    let cluster = Cluster::start();
    let admin = cluster.admin(&["--sample-interval=200ms"]);
    let a = admin.addr;
    let started = Instant::now();
    for i in 0..5 {
        post_ok(&cluster.brokers[i % 2], "/pub?topic=t1", "more");
    }
    let history = eventually("three samples after the publishes", || {
        let h = get_json(a, "/api/history/t1/c1");
        let points = h["points"].as_array()?;
        let fresh = points.iter().filter(|p| p["message_count"] == 7).count();
        (fresh >= 2).then_some(h)
    });
    assert_eq!(history["interval_ms"], 200);
    assert!(
        !history["rates"].as_array().unwrap().is_empty(),
        "{history}"
    );
    let channel = page(a, "/topics/t1/c1");
    assert_eq!(
        channel.matches("<polyline").count(),
        3,
        "rate, depth and in-flight"
    );
    let topic = page(a, "/topics/t1");
    assert_eq!(topic.matches("<polyline").count(), 2, "rate and depth");
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[test]
fn unreachable_node_is_named_and_the_page_still_renders() {
    let live = broker(&[]);
    post_ok(&live, "/pub?topic=solo", "x");
    let admin = Admin::start(&[
        format!("--nsqd-http-address={}", live.http_addr()),
        "--nsqd-http-address=127.0.0.1:1".to_owned(),
    ]);
    for path in ["/nodes", "/topics", "/topics/solo"] {
        let body = page(admin.addr, path);
        assert!(body.contains("unreachable"), "{path}: {body}");
        assert!(body.contains("127.0.0.1:1"), "{path}: {body}");
        assert!(body.contains("connection refused"), "{path}: {body}");
    }
    assert!(page(admin.addr, "/nodes").contains(&live.http_addr().to_string()));
    assert!(page(admin.addr, "/topics").contains("href=\"/topics/solo\""));
    // Every node unreachable: the page renders the error.
    let dead = Admin::start(&["--nsqd-http-address=127.0.0.1:1".to_owned()]);
    let body = page(dead.addr, "/topics");
    assert!(body.contains("failed to query any nsqd"), "{body}");
}

#[test]
fn base_path_nests_pages_api_and_assets() {
    let live = broker(&[]);
    post_ok(&live, "/pub?topic=t", "x");
    let admin = Admin::start(&[
        format!("--nsqd-http-address={}", live.http_addr()),
        "--base-path=/admin/".to_owned(),
    ]);
    let a = admin.addr;
    let body = page(a, "/admin/topics");
    assert!(body.contains("href=\"/admin/topics/t\""), "{body}");
    assert!(body.contains("src=\"/admin/static/app.js\""));
    assert!(body.contains("data-base=\"/admin\""));
    assert!(page(a, "/admin").contains("href=\"/admin/topics/t\""));
    assert_eq!(
        get_json(a, "/admin/api/topics")["topics"],
        serde_json::json!(["t"])
    );
    assert_eq!(get(a, "/admin/ping").body, "OK");
    assert_eq!(get(a, "/topics").status, 404);
    assert_eq!(get(a, "/api/topics").status, 404);
}

/// Debian's chromium, if installed.
fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser"].iter().find_map(|name| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        })
    })
}

#[test]
fn headless_chromium_screenshots_when_installed() {
    let Some(browser) = chromium() else {
        eprintln!("chromium not installed; skipping the screenshots");
        return;
    };
    let cluster = Cluster::start();
    let admin = cluster.admin(&["--sample-interval=200ms"]);
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/admin-screenshots");
    std::fs::create_dir_all(&out).unwrap();
    for (name, path) in [
        ("topics", "/topics"),
        ("topic", "/topics/t1"),
        ("channel", "/topics/t1/c1"),
        ("nodes", "/nodes"),
    ] {
        let file = out.join(format!("{name}.png"));
        let _ = std::fs::remove_file(&file);
        let mut child = Command::new(&browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
            ])
            .arg(format!("--screenshot={}", file.display()))
            .arg("--window-size=1280,900")
            .arg(format!("http://{}{path}", admin.addr))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        assert!(size > 1000, "no screenshot of {path} at {}", file.display());
    }
}
