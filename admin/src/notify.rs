//! Notifications of admin actions: a JSON record POSTed to `--notification-http-endpoint`.
//!
//! Mirrors `nsqadmin/notify.go` (`AdminAction`, `basicAuthUser`, `notifyAdminAction`) and
//! `nsqadmin.go` `handleAdminActions`. The record's fields and their order are upstream's. A
//! handler never waits for the POST: records go through a bounded queue
//! ([`NOTIFY_QUEUE_MAX`]) to one sender task; when the queue is full the record is dropped and
//! logged (upstream starts a goroutine per record instead).

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::client::HttpClient;

/// How many records may wait for the sender.
pub const NOTIFY_QUEUE_MAX: usize = 1024;

/// One admin action (upstream's `AdminAction`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AdminAction {
    /// `pause_channel`, `delete_topic`, `tombstone_topic_producer`, …
    pub action: String,
    /// The topic.
    pub topic: String,
    /// The channel, when the action is on one.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub channel: String,
    /// The node, for a tombstone.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub node: String,
    /// Unix seconds.
    pub timestamp: i64,
    /// The HTTP Basic user of the request, if any.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub user: String,
    /// The peer's `ip:port`.
    pub remote_ip: String,
    /// The request's `User-Agent`.
    pub user_agent: String,
    /// The URL of the request that acted.
    pub url: String,
    /// This admin's host name.
    pub via: String,
}

/// The user name of an `Authorization: Basic …` header (upstream's `basicAuthUser`).
pub fn basic_auth_user(authorization: Option<&str>) -> String {
    let Some((scheme, encoded)) = authorization.and_then(|h| h.split_once(' ')) else {
        return String::new();
    };
    if scheme != "Basic" {
        return String::new();
    }
    let Some(decoded) = base64_decode(encoded) else {
        return String::new();
    };
    let text = String::from_utf8_lossy(&decoded);
    match text.split_once(':') {
        Some((user, _)) => user.to_owned(),
        None => String::new(),
    }
}

/// Standard base64 with padding (Go's `base64.StdEncoding`); `None` when malformed.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if bytes.len() % 4 != 0 {
        return None;
    }
    let value = |c: u8| -> Option<u32> {
        Some(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        }))
    };
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for chunk in bytes.chunks(4) {
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 {
            return None;
        }
        let mut n: u32 = 0;
        for (i, &c) in chunk.iter().enumerate() {
            let v = if i >= 4 - pad { 0 } else { value(c)? };
            n = (n << 6) | v;
        }
        let [_, a, b, c] = n.to_be_bytes();
        out.extend_from_slice(&[a, b, c][..3 - pad]);
    }
    Some(out)
}

/// The sending side handlers use.
#[derive(Debug, Clone)]
pub struct Notifier {
    queue: mpsc::Sender<AdminAction>,
}

impl Notifier {
    /// Starts the sender task on the current runtime, POSTing to `endpoint`.
    pub fn start(endpoint: String, client: HttpClient) -> Notifier {
        let (queue, records) = mpsc::channel(NOTIFY_QUEUE_MAX);
        tokio::spawn(send_all(endpoint, client, records));
        Notifier { queue }
    }

    /// Queues a record without waiting.
    pub fn notify(&self, action: AdminAction) {
        if let Err(e) = self.queue.try_send(action) {
            tracing::error!("failed to queue admin action notification - {e}");
        }
    }
}

async fn send_all(endpoint: String, client: HttpClient, mut records: mpsc::Receiver<AdminAction>) {
    while let Some(action) = records.recv().await {
        let body = match serde_json::to_vec(&action) {
            Ok(body) => Bytes::from(body),
            Err(e) => {
                tracing::error!("failed to serialize admin action - {e}");
                continue;
            }
        };
        tracing::info!("POSTing notification to {endpoint}");
        if let Err(e) = client
            .request("POST", &endpoint, Some(("application/json", body)))
            .await
        {
            tracing::error!("failed to POST notification - {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_user_as_upstream() {
        // "alice:secret"
        assert_eq!(basic_auth_user(Some("Basic YWxpY2U6c2VjcmV0")), "alice");
        // "bob:" (empty password)
        assert_eq!(basic_auth_user(Some("Basic Ym9iOg==")), "bob");
        assert_eq!(basic_auth_user(Some("Bearer YWxpY2U6c2VjcmV0")), "");
        assert_eq!(basic_auth_user(Some("Basic !!!!")), "");
        assert_eq!(basic_auth_user(Some("Basic YWxpY2U=")), ""); // no colon
        assert_eq!(basic_auth_user(None), "");
    }

    #[test]
    fn records_have_upstreams_fields_in_order() {
        let action = AdminAction {
            action: "pause_channel".into(),
            topic: "t".into(),
            channel: "c".into(),
            node: String::new(),
            timestamp: 7,
            user: String::new(),
            remote_ip: "127.0.0.1:5".into(),
            user_agent: "curl".into(),
            url: "http://h/api/topics/t/c".into(),
            via: "box".into(),
        };
        assert_eq!(
            serde_json::to_string(&action).unwrap(),
            r#"{"action":"pause_channel","topic":"t","channel":"c","timestamp":7,"remote_ip":"127.0.0.1:5","user_agent":"curl","url":"http://h/api/topics/t/c","via":"box"}"#
        );
    }
}
