use super::*;

fn parse(list: &[&str]) -> Result<Cli, CliError> {
    let args: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    Cli::parse(&args)
}

fn options(list: &[&str]) -> Options {
    match parse(list).unwrap() {
        Cli::Run(options) => *options,
        other => panic!("{other:?}"),
    }
}

#[test]
fn defaults_are_upstreams() {
    let o = options(&[]);
    assert_eq!(o.http_address, "0.0.0.0:4171");
    assert_eq!(o.base_path, "/");
    assert_eq!(o.http_client_connect_timeout, Duration::from_secs(2));
    assert_eq!(o.http_client_request_timeout, Duration::from_secs(5));
    assert_eq!(o.allow_config_from_cidr, "127.0.0.1/8");
    assert_eq!(o.acl_http_header, "X-Forwarded-User");
    assert_eq!(o.statsd_interval, Duration::from_secs(60));
    assert_eq!(o.log_level, LogLevel::Info);
}

#[test]
fn flags_in_every_spelling_and_repeats() {
    let o = options(&[
        "-lookupd-http-address=127.0.0.1:4161",
        "--lookupd-http-address",
        "127.0.0.1:4162",
        "--admin-user=alice",
        "-admin-user",
        "bob",
        "--base-path=admin/",
        "--http-client-request-timeout=1500ms",
        "--notification-http-endpoint",
        "http://127.0.0.1:9/notify",
        "--sample-interval=1s",
        "--sample-history=10",
    ]);
    assert_eq!(
        o.lookupd_http_addresses,
        ["127.0.0.1:4161", "127.0.0.1:4162"]
    );
    assert_eq!(o.admin_users, ["alice", "bob"]);
    assert_eq!(o.base_path, "/admin");
    assert_eq!(o.http_client_request_timeout, Duration::from_millis(1500));
    assert_eq!(o.notification_http_endpoint, "http://127.0.0.1:9/notify");
    assert_eq!(o.sample_interval, Duration::from_secs(1));
    assert_eq!(o.sample_history, 10);
}

#[test]
fn version_help_and_bad_flags() {
    assert!(matches!(parse(&["--version"]), Ok(Cli::Version)));
    assert!(matches!(parse(&["-h"]), Ok(Cli::Help)));
    assert!(matches!(parse(&["--bogus"]), Err(CliError::Flag(_))));
    assert!(matches!(
        parse(&["--sample-history=1"]),
        Err(CliError::Flag(_))
    ));
    assert!(matches!(
        parse(&["--sample-interval=1ms"]),
        Err(CliError::Flag(_))
    ));
    assert_eq!(
        VERSION_LINE,
        "sluice-admin v0.1.0 (nsqadmin v1.3.0 compatible)"
    );
}

#[test]
fn base_paths_normalize_as_upstream() {
    assert_eq!(normalize_base_path(""), "/");
    assert_eq!(normalize_base_path("/"), "/");
    assert_eq!(normalize_base_path("admin"), "/admin");
    assert_eq!(normalize_base_path("/a//b/../c/"), "/a/c");
}

#[test]
fn start_checks_use_upstreams_words() {
    let mut o = Options::default();
    assert_eq!(
        validate(&o).unwrap_err(),
        "--nsqd-http-address or --lookupd-http-address required"
    );
    o.lookupd_http_addresses = vec!["127.0.0.1:4161".into()];
    o.nsqd_http_addresses = vec!["127.0.0.1:4151".into()];
    assert_eq!(
        validate(&o).unwrap_err(),
        "use --nsqd-http-address or --lookupd-http-address not both"
    );
    o.nsqd_http_addresses.clear();
    assert_eq!(validate(&o), Ok(()));
    o.http_client_tls_cert = "/nonexistent.pem".into();
    assert_eq!(
        validate(&o).unwrap_err(),
        "--http-client-tls-key must be specified with --http-client-tls-cert"
    );
    o.http_client_tls_cert.clear();
    o.allow_config_from_cidr = "nope".into();
    assert_eq!(
        validate(&o).unwrap_err(),
        "failed to parse --allow-config-from-cidr (nope) - invalid CIDR address: nope"
    );
    o.allow_config_from_cidr = "127.0.0.1/8".into();
    o.lookupd_http_addresses = vec!["no-port".into()];
    assert!(validate(&o)
        .unwrap_err()
        .starts_with("failed to resolve --lookupd-http-address (no-port) - "));
}

#[test]
fn config_file_uses_upstreams_names_under_the_command_line() {
    let dir = std::env::temp_dir().join(format!("sluice-admin-options-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("admin.toml");
    std::fs::write(
        &path,
        "nsqlookupd_http_addresses = [\"127.0.0.1:1\", \"127.0.0.1:2\"]\n\
         admin_users = [\"root\"]\nhttp_address = \"127.0.0.1:7\"\n\
         http_client_connect_timeout = 1500\n",
    )
    .unwrap();
    let config = format!("--config={}", path.display());
    let o = options(&[&config, "--http-address=127.0.0.1:9"]);
    assert_eq!(o.lookupd_http_addresses, ["127.0.0.1:1", "127.0.0.1:2"]);
    assert_eq!(o.admin_users, ["root"]);
    assert_eq!(o.http_address, "127.0.0.1:9");
    assert_eq!(o.http_client_connect_timeout, Duration::from_millis(1500));
    std::fs::write(&path, "not toml [").unwrap();
    assert!(matches!(parse(&[&config]), Err(CliError::Config(_))));
    std::fs::remove_dir_all(&dir).unwrap();
}
