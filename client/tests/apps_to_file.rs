//! `sluice to-file` against the real `sluiced` (and `sluice-lookupd`): every message becomes
//! one line; files rotate by size, are gzipped as concatenated members and move from the work
//! directory to the output directory; SIGTERM drains (every message written is finished, the
//! channel ends empty); and a SIGKILL at any moment loses no finished message — everything
//! the broker no longer holds is in the files. Topics can also be found through lookupd by
//! pattern.

mod apps_support;

use std::collections::BTreeSet;
use std::path::Path;

use apps_support::{
    complete_lines, files_under, gunzip_prefix, wait_for, Broker, Lookupd, Running, TempDir,
};

fn bodies(prefix: &str, count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| format!("{prefix}-{i:06}").into_bytes())
        .collect()
}

/// Every complete line of every file under `dir` (gzip files decompressed as far as they go).
fn lines_under(dir: &Path) -> Vec<Vec<u8>> {
    files_under(dir)
        .iter()
        .flat_map(|path| {
            let bytes = if path.extension().is_some_and(|e| e == "gz") {
                gunzip_prefix(path)
            } else {
                std::fs::read(path).unwrap()
            };
            complete_lines(&bytes)
        })
        .collect()
}

#[test]
fn every_message_is_one_line_and_sigterm_drains() {
    let broker = Broker::start();
    let out_dir = TempDir::new("to-file-plain");
    let published = bodies("plain", 300);
    broker.publish("plain", &published);
    let run = Running::sluice(&[
        "to-file",
        "--topic=plain",
        &format!("--nsqd-tcp-address={}", broker.tcp),
        &format!("--output-dir={}", out_dir.path().display()),
        "--sync-interval=100ms",
        // No new file name at the turn of an hour during the test.
        "--datetime-format=%Y",
    ]);
    wait_for("300 lines", || lines_under(out_dir.path()).len() == 300);
    run.signal("TERM");
    let out = run.wait();
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    let files = files_under(out_dir.path());
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_str().unwrap().to_owned();
    // <TOPIC>.<HOST><REV>.<DATETIME>.log with no <REV> (no rotation, no gzip, no work dir).
    assert!(
        name.starts_with("plain.") && name.ends_with(".log"),
        "{name}"
    );
    assert_eq!(name.matches('.').count(), 3, "{name}");
    assert_eq!(lines_under(out_dir.path()), published);
    let channel = broker.channel("plain", "nsq_to_file").unwrap();
    assert_eq!((channel.depth, channel.in_flight_count), (0, 0));
}

#[test]
fn gzip_files_rotate_by_size_and_move_out_of_the_work_dir() {
    let broker = Broker::start();
    let work = TempDir::new("to-file-work");
    let out_dir = TempDir::new("to-file-out");
    let published = bodies("zipped", 2000);
    broker.publish("zipped", &published);
    let run = Running::sluice(&[
        "to-file",
        "--topic=zipped",
        &format!("--nsqd-tcp-address={}", broker.tcp),
        &format!("--output-dir={}", out_dir.path().display()),
        &format!("--work-dir={}", work.path().display()),
        "--gzip",
        "--gzip-level=9",
        "--rotate-size=4000",
        "--sync-interval=100ms",
        "--max-in-flight=50",
        "--host-identifier=box",
        "--datetime-format=%Y",
    ]);
    wait_for("the channel to empty", || {
        broker
            .channel("zipped", "nsq_to_file")
            .is_some_and(|c| c.depth == 0 && c.in_flight_count == 0)
    });
    run.signal("TERM");
    let out = run.wait();
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert!(files_under(work.path()).is_empty(), "left in the work dir");
    let files = files_under(out_dir.path());
    assert!(files.len() >= 3, "expected several rotations: {files:?}");
    for (rev, path) in files.iter().enumerate() {
        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with(&format!("zipped.box-{rev:06}.")) && name.ends_with(".log.gz"),
            "{name}"
        );
    }
    let mut lines = lines_under(out_dir.path());
    lines.sort();
    assert_eq!(lines, published, "each message exactly once");
}

/// Reads the files, then the broker: together they must hold every message published.
fn assert_nothing_finished_was_lost(broker: &Broker, dir: &Path, published: &[Vec<u8>]) {
    let written: BTreeSet<Vec<u8>> = lines_under(dir).into_iter().collect();
    let left: BTreeSet<Vec<u8>> = broker.drain("crash", "nsq_to_file").into_iter().collect();
    let missing: Vec<&Vec<u8>> = published
        .iter()
        .filter(|b| !written.contains(*b) && !left.contains(*b))
        .collect();
    assert!(
        missing.is_empty(),
        "{} finished messages are in neither the files nor the broker, e.g. {:?} ({} written, {} left)",
        missing.len(),
        String::from_utf8_lossy(missing[0]),
        written.len(),
        left.len()
    );
}

#[test]
fn a_sigkill_loses_no_finished_message_plain_and_gzip() {
    for gzip in [false, true] {
        // The killed connection's in-flight messages return to the channel at their timeout.
        let broker = Broker::start_with(&["--msg-timeout=1s".to_owned()]);
        let dir = TempDir::new("to-file-crash");
        let published = bodies("crash", 20_000);
        broker.publish("crash", &published);
        let mut args = vec![
            "to-file".to_owned(),
            "--topic=crash".to_owned(),
            format!("--nsqd-tcp-address={}", broker.tcp),
            format!("--output-dir={}", dir.path().display()),
            "--sync-interval=50ms".to_owned(),
            "--max-in-flight=100".to_owned(),
        ];
        if gzip {
            args.push("--gzip".to_owned());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = Running::sluice(&args);
        // Kill it mid-stream, once a good part was written and finished.
        wait_for("some messages finished", || {
            broker
                .channel("crash", "nsq_to_file")
                .is_some_and(|c| c.depth < 17_000)
        });
        run.signal("KILL");
        let out = run.wait();
        assert!(out.status.code().is_none(), "killed by the signal");
        assert_nothing_finished_was_lost(&broker, dir.path(), &published);
    }
}

#[test]
fn topics_matching_a_pattern_are_found_through_lookupd() {
    let lookupd = Lookupd::start();
    let broker = Broker::start_registered(&lookupd);
    let dir = TempDir::new("to-file-discover");
    broker.publish("orders1", &[b"o1".to_vec()]);
    broker.publish("misc", &[b"m".to_vec()]);
    wait_for("the topics in lookupd", || {
        lookupd.knows("orders1") && lookupd.knows("misc")
    });
    let run = Running::sluice(&[
        "to-file",
        "--topic-pattern=^orders",
        "--topic-refresh=200ms",
        &format!("--lookupd-http-address={}", lookupd.http),
        &format!("--output-dir={}", dir.path().display()),
        "--sync-interval=100ms",
        "--datetime-format=%Y",
    ]);
    wait_for("the first topic's line", || {
        lines_under(dir.path()) == [b"o1".to_vec()]
    });
    // A topic created later is picked up at the next refresh.
    broker.publish("orders2", &[b"o2".to_vec()]);
    wait_for("the second topic's line", || {
        lines_under(dir.path()).len() == 2
    });
    run.signal("TERM");
    let out = run.wait();
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    let names: Vec<String> = files_under(dir.path())
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names[0].starts_with("orders1.") && names[1].starts_with("orders2."));
    assert_eq!(broker.channel("misc", "nsq_to_file"), None);
}

#[test]
fn sighup_closes_the_file_and_the_next_message_opens_a_new_one() {
    let broker = Broker::start();
    let dir = TempDir::new("to-file-hup");
    let run = Running::sluice(&[
        "to-file",
        "--topic=hup",
        &format!("--nsqd-tcp-address={}", broker.tcp),
        &format!("--output-dir={}", dir.path().display()),
        "--gzip",
        "--sync-interval=100ms",
        "--skip-empty-files",
        "--datetime-format=fixed",
    ]);
    broker.publish("hup", &["before"]);
    wait_for("the first line", || lines_under(dir.path()).len() == 1);
    run.signal("HUP");
    // The file is closed at once; the next message opens the next revision.
    wait_for("the file closed", || run.stderr().contains("closed "));
    broker.publish("hup", &["after"]);
    wait_for("the second file", || files_under(dir.path()).len() == 2);
    wait_for("the second line", || lines_under(dir.path()).len() == 2);
    run.signal("TERM");
    let out = run.wait();
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    let files = files_under(dir.path());
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        names[0].contains("-000000.") && names[1].contains("-000001."),
        "{names:?}"
    );
    assert_eq!(
        complete_lines(&gunzip_prefix(&files[0])),
        [b"before".to_vec()]
    );
    assert_eq!(
        complete_lines(&gunzip_prefix(&files[1])),
        [b"after".to_vec()]
    );
}
