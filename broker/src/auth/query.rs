//! Asking the auth servers for a client's authorizations, over HTTP(S) on the shard's executor.
//!
//! Mirrors upstream `internal/auth/authorizations.go` (`QueryAnyAuthd`, `QueryAuthd`) and the
//! `GETV1` of `internal/http_api/api_request.go`: the servers are tried in turn from a varying
//! start until one answers; each gets `GET <endpoint>?common_name=…&remote_ip=…&secret=…&tls=…`
//! (upstream sends `secret`, not `auth_secret`), where the endpoint is the address as given
//! when it holds `://`, else `http://<address>/auth`; anything but a 200 is an error. The
//! connection is bounded by `--http-client-connect-timeout` and the whole exchange by
//! `--http-client-request-timeout`. Nothing here blocks the shard: the socket is glommio's, and
//! only the resolution of a host name (never of an IP literal) runs on the blocking pool.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;
use http_body_util::{BodyExt, Empty, Limited};

use super::Authorizations;
use crate::conn::tls_stream::{HyperStream, TlsStream};

/// The largest answer read from an auth server.
pub const ANSWER_BYTES_MAX: usize = 1 << 20;

/// What the auth server is told about the client.
#[derive(Debug, Clone)]
pub struct Query {
    /// The client's IP address.
    pub remote_ip: String,
    /// Whether the client upgraded to TLS.
    pub tls: bool,
    /// What the client sent in AUTH.
    pub secret: String,
    /// The subject common name of the client's certificate (empty without one).
    pub common_name: String,
}

/// How to reach the auth servers.
#[derive(Debug, Clone)]
pub struct Client {
    /// `--auth-http-address`, each a `host:port` or a URL.
    pub addresses: Vec<String>,
    /// `--http-client-connect-timeout`.
    pub connect_timeout: Duration,
    /// `--http-client-request-timeout`.
    pub request_timeout: Duration,
    /// Roots for `https://` addresses (`--tls-root-ca-file`), when configured.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl Client {
    /// Asks the servers in turn, starting at `start % count`, until one answers.
    ///
    /// # Errors
    /// The last server's error when none answered with valid authorizations.
    pub async fn query_any(&self, query: &Query, start: usize) -> Result<Authorizations, String> {
        let count = self.addresses.len();
        let mut last = String::from("no auth server configured");
        for i in 0..count {
            let Some(address) = self.addresses.get((start + i) % count) else {
                continue;
            };
            match self.query(address, query).await {
                Ok(answer) => return Ok(answer),
                Err(e) => {
                    tracing::warn!("failed auth against {address} {e}");
                    last = e;
                }
            }
        }
        Err(last)
    }

    /// Asks one server (upstream `QueryAuthd`).
    ///
    /// # Errors
    /// Why there is no valid answer: connection, timeout, status, JSON or validation.
    pub async fn query(&self, address: &str, query: &Query) -> Result<Authorizations, String> {
        let endpoint = Endpoint::parse(address)?;
        let params = form_urlencoded::Serializer::new(String::new())
            .append_pair("common_name", &query.common_name)
            .append_pair("remote_ip", &query.remote_ip)
            .append_pair("secret", &query.secret)
            .append_pair("tls", if query.tls { "true" } else { "false" })
            .finish();
        let separator = if endpoint.path.contains('?') {
            '&'
        } else {
            '?'
        };
        let target = format!("{}{separator}{params}", endpoint.path);
        let exchange = self.exchange(&endpoint, &target);
        let timeout = async {
            glommio::timer::sleep(self.request_timeout).await;
            Err(format!(
                "GET {}: request timed out after {:?}",
                endpoint.url(),
                self.request_timeout
            ))
        };
        let (status, body) = futures_lite::future::or(exchange, timeout).await?;
        if status != hyper::StatusCode::OK {
            return Err(format!(
                "got response {status} {:?}",
                String::from_utf8_lossy(&body)
            ));
        }
        Authorizations::from_json(&body, Instant::now())
    }

    async fn exchange(
        &self,
        endpoint: &Endpoint,
        target: &str,
    ) -> Result<(hyper::StatusCode, Bytes), String> {
        let addr = resolve(&endpoint.host, endpoint.port).await?;
        let socket = TcpStream::connect_timeout(addr, self.connect_timeout)
            .await
            .map_err(|e| format!("dial tcp {addr}: {e}"))?;
        let _ = socket.set_nodelay(true);
        if !endpoint.https {
            return request(socket, endpoint, target).await;
        }
        let Some(config) = self.tls.clone() else {
            return Err(format!(
                "{}: https auth servers need --tls-root-ca-file",
                endpoint.url()
            ));
        };
        let name = rustls::pki_types::ServerName::try_from(endpoint.host.clone())
            .map_err(|e| format!("{}: {e}", endpoint.host))?;
        let tls = TlsStream::connect(socket, config, name, self.request_timeout)
            .await
            .map_err(|e| format!("tls handshake with {addr}: {e}"))?;
        request(tls, endpoint, target).await
    }
}

/// One GET over `io`, answer body included.
async fn request<S>(
    io: S,
    endpoint: &Endpoint,
    target: &str,
) -> Result<(hyper::StatusCode, Bytes), String>
where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(HyperStream::new(io))
        .await
        .map_err(|e| e.to_string())?;
    // The connection task lives as long as this request (dropping a glommio task cancels it).
    let _driver = glommio::spawn_local(async move {
        let _ = connection.await;
    });
    let request = hyper::Request::get(target)
        .header(hyper::header::HOST, endpoint.authority.as_str())
        .header(hyper::header::ACCEPT, "application/vnd.nsq; version=1.0")
        .header(hyper::header::USER_AGENT, crate::options::VERSION_LINE)
        .header(hyper::header::CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("GET {}: {e}", endpoint.url()))?;
    let status = response.status();
    let body = Limited::new(response.into_body(), ANSWER_BYTES_MAX)
        .collect()
        .await
        .map_err(|e| format!("reading the answer of {}: {e}", endpoint.url()))?
        .to_bytes();
    Ok((status, body))
}

/// The address of one host, resolving a name on the blocking pool.
async fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let name = format!("{host}:{port}");
    let lookup = name.clone();
    let found = glommio::executor()
        .spawn_blocking(move || lookup.to_socket_addrs().map(|mut a| a.next()))
        .await;
    match found {
        Ok(Some(addr)) => Ok(addr),
        Ok(None) => Err(format!("lookup {name}: no such host")),
        Err(e) => Err(format!("lookup {name}: {e}")),
    }
}

/// Where an auth server is, from an `--auth-http-address`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `https://`
    pub https: bool,
    /// Host name or IP (without brackets).
    pub host: String,
    /// Port (80 or 443 by default).
    pub port: u16,
    /// `host:port` as written, for the `Host` header.
    pub authority: String,
    /// Path (and query, if the URL had one).
    pub path: String,
}

impl Endpoint {
    /// Parses `host:port` (meaning `http://host:port/auth`) or an `http(s)://` URL.
    ///
    /// # Errors
    /// An unsupported scheme or a bad port.
    pub fn parse(address: &str) -> Result<Endpoint, String> {
        let (https, rest, default_path) = if let Some(rest) = address.strip_prefix("http://") {
            (false, rest, "/")
        } else if let Some(rest) = address.strip_prefix("https://") {
            (true, rest, "/")
        } else if address.contains("://") {
            return Err(format!("{address}: unsupported protocol scheme"));
        } else {
            (false, address, "/auth")
        };
        let (authority, path) = match rest.find('/') {
            Some(at) => rest.split_at(at),
            None => (rest, default_path),
        };
        let default_port = if https { 443 } else { 80 };
        let (host, port) = split_host_port(authority, default_port)
            .ok_or_else(|| format!("{address}: invalid host:port"))?;
        Ok(Endpoint {
            https,
            host,
            port,
            authority: authority.to_owned(),
            path: path.to_owned(),
        })
    }

    fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}{}", self.authority, self.path)
    }
}

fn split_host_port(authority: &str, default_port: u16) -> Option<(String, u16)> {
    if authority.is_empty() {
        return None;
    }
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => default_port,
            None => return None,
        };
        return Some((host.to_owned(), port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => Some((host.to_owned(), port.parse().ok()?)),
        Some(_) => None,
        None => Some((authority.to_owned(), default_port)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_follow_upstreams_rules() {
        let e = Endpoint::parse("127.0.0.1:4181").unwrap();
        assert_eq!(
            (e.https, e.host.as_str(), e.port, e.path.as_str()),
            (false, "127.0.0.1", 4181, "/auth")
        );
        let e = Endpoint::parse("https://auth.example/v2/check").unwrap();
        assert_eq!(
            (e.https, e.host.as_str(), e.port, e.path.as_str()),
            (true, "auth.example", 443, "/v2/check")
        );
        let e = Endpoint::parse("http://[::1]:8080").unwrap();
        assert_eq!(
            (
                e.host.as_str(),
                e.port,
                e.path.as_str(),
                e.authority.as_str()
            ),
            ("::1", 8080, "/", "[::1]:8080")
        );
        assert!(Endpoint::parse("ftp://x").is_err());
        assert!(Endpoint::parse("host:notaport").is_err());
        assert!(Endpoint::parse("").is_err());
    }
}
