//! How a consumer's `max_in_flight` is spread over its connections. Pure.
//!
//! Mirrors go-nsq's `consumer.go` `perConnMaxInFlight`: each connection gets an equal share,
//! at least 1, and never more than the broker's `max_rdy_count`.

/// The RDY count for one of `connections` connections sharing `max_in_flight`.
///
/// # Examples
/// ```
/// use sluice_client::consumer::rdy::per_connection;
/// assert_eq!(per_connection(2500, 4, 2500), 625);
/// assert_eq!(per_connection(3, 10, 2500), 1);
/// assert_eq!(per_connection(10_000, 1, 2500), 2500);
/// ```
pub fn per_connection(max_in_flight: u64, connections: usize, max_rdy_count: u64) -> u64 {
    let connections = u64::try_from(connections.max(1)).unwrap_or(u64::MAX);
    (max_in_flight / connections)
        .max(1)
        .min(max_rdy_count.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_never_exceed_the_total_unless_each_needs_one() {
        for total in [1u64, 2, 7, 100, 2500] {
            for conns in 1..50usize {
                let each = per_connection(total, conns, 2500);
                assert!(each >= 1);
                assert!(each * conns as u64 <= total.max(conns as u64));
            }
        }
        assert_eq!(per_connection(100, 0, 2500), 100);
        assert_eq!(per_connection(100, 1, 0), 1);
    }
}
