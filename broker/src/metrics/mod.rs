//! Metrics: statsd pushes as nsqd makes them, and a Prometheus `GET /metrics`.
//!
//! - [`statsd`]: the `--statsd-*` thread (mirrors `nsqd/statsd.go`), fed by the broker's own
//!   `/stats`.
//! - [`scrape`]: `GET /metrics` (upstream has none, nsqio/nsq #732): every shard's
//!   [`snapshot`] gathered over the mesh, folded into bounded [`series`], rendered by
//!   [`prometheus`] in the text format of [`exposition`].
//!
//! Nothing here is on the hot path: counters are read where the shard already keeps them, and
//! a snapshot is taken only when asked.

pub mod exposition;
pub mod prometheus;
pub mod scrape;
pub mod series;
pub mod snapshot;
pub mod statsd;
