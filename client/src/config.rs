//! Client settings: what is sent in IDENTIFY, socket timeouts, pipelining, RDY and reconnects.
//!
//! Mirrors go-nsq's `Config` (`config.go`) where a setting exists there, with its default.

use std::time::Duration;

use sluice_proto::identify::IdentifyRequest;

/// Settings shared by [`Producer`](crate::Producer) and [`Consumer`](crate::Consumer).
#[derive(Debug, Clone)]
pub struct Config {
    /// Sent in IDENTIFY as `client_id` (go-nsq: the short host name).
    pub client_id: String,
    /// Sent in IDENTIFY as `hostname`.
    pub hostname: String,
    /// Sent in IDENTIFY as `user_agent`.
    pub user_agent: String,
    /// Asked heartbeat interval; `None` disables heartbeats (IDENTIFY sends -1).
    pub heartbeat_interval: Option<Duration>,
    /// Asked `msg_timeout`; `None` takes the broker's default.
    pub msg_timeout: Option<Duration>,
    /// Asked output buffer size in bytes; `None` takes the broker's default.
    pub output_buffer_size: Option<u32>,
    /// Asked output buffer timeout; `None` takes the broker's default.
    pub output_buffer_timeout: Option<Duration>,
    /// Time allowed for the TCP connect.
    pub dial_timeout: Duration,
    /// A connection with no byte received for this long is dead (go-nsq `ReadTimeout`, 60 s).
    /// Keep it above the heartbeat interval.
    pub read_timeout: Duration,
    /// Time allowed for one write (go-nsq `WriteTimeout`, 1 s).
    pub write_timeout: Duration,
    /// Consumer: messages in flight across all connections (go-nsq `MaxInFlight`).
    pub max_in_flight: u64,
    /// Producer: requests sent but not yet acknowledged before a send waits.
    pub max_pending: usize,
    /// The largest frame accepted from a broker (a message frame is the body plus 34 bytes).
    pub max_frame_size: usize,
    /// Bytes asked of the kernel per read.
    pub read_chunk: usize,
    /// Consumer: how often each lookupd is asked for the topic's brokers.
    pub lookupd_poll_interval: Duration,
    /// Consumer: first delay before reconnecting to a broker.
    pub backoff_min: Duration,
    /// Consumer: longest delay between reconnect attempts.
    pub backoff_max: Duration,
    /// Consumer: delay of a `REQ` when the handler returns [`Disposition::Requeue`] with none.
    ///
    /// [`Disposition::Requeue`]: crate::Disposition::Requeue
    pub default_requeue_delay: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            client_id: "sluice-client".to_owned(),
            hostname: "localhost".to_owned(),
            user_agent: concat!("sluice-client/", env!("CARGO_PKG_VERSION")).to_owned(),
            heartbeat_interval: Some(Duration::from_secs(30)),
            msg_timeout: None,
            output_buffer_size: None,
            output_buffer_timeout: None,
            dial_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(1),
            max_in_flight: 1,
            max_pending: 64,
            max_frame_size: 4 * 1024 * 1024,
            read_chunk: 64 * 1024,
            lookupd_poll_interval: Duration::from_secs(60),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(30),
            default_requeue_delay: Duration::from_secs(90),
        }
    }
}

impl Config {
    /// The IDENTIFY body these settings produce, with `feature_negotiation` on.
    ///
    /// # Examples
    /// ```
    /// let mut config = sluice_client::Config::default();
    /// config.heartbeat_interval = None;
    /// let req = config.identify_request();
    /// assert_eq!(req.heartbeat_interval, -1);
    /// assert!(req.feature_negotiation);
    /// ```
    pub fn identify_request(&self) -> IdentifyRequest {
        IdentifyRequest {
            client_id: self.client_id.clone(),
            hostname: self.hostname.clone(),
            user_agent: self.user_agent.clone(),
            heartbeat_interval: self.heartbeat_interval.map_or(-1, millis),
            output_buffer_size: self.output_buffer_size.map_or(0, i64::from),
            output_buffer_timeout: self.output_buffer_timeout.map_or(0, millis),
            msg_timeout: self.msg_timeout.map_or(0, millis),
            feature_negotiation: true,
            ..IdentifyRequest::default()
        }
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
