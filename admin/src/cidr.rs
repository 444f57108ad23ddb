//! CIDR blocks for `--allow-config-from-cidr`: Go's `net.ParseCIDR` and `IPNet.Contains`.
//!
//! Pure, no IO. An IPv4 block also matches IPv4-mapped IPv6 peers (`::ffff:127.0.0.1`), as Go's
//! `Contains` does after `To4`.

use std::net::IpAddr;

/// A parsed `address/prefix-length` block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix_len: u8,
}

impl Cidr {
    /// Parses `127.0.0.1/8` or `::1/128`.
    ///
    /// # Errors
    /// Go's words: `invalid CIDR address: TEXT`.
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let invalid = || format!("invalid CIDR address: {text}");
        let (address, len) = text.split_once('/').ok_or_else(invalid)?;
        let network: IpAddr = address.parse().map_err(|_| invalid())?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let prefix_len: u8 = len.parse().map_err(|_| invalid())?;
        if prefix_len > max {
            return Err(invalid());
        }
        Ok(Cidr {
            network,
            prefix_len,
        })
    }

    /// Whether `ip` is inside the block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_equal(&net.octets(), &ip.octets(), self.prefix_len)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_equal(&net.octets(), &ip.octets(), self.prefix_len)
            }
            _ => false,
        }
    }
}

/// Whether the first `bits` bits of `a` and `b` are equal.
fn prefix_equal(a: &[u8], b: &[u8], bits: u8) -> bool {
    let mut left = u32::from(bits);
    for (x, y) in a.iter().zip(b) {
        if left == 0 {
            return true;
        }
        let take = left.min(8);
        let mask = u8::MAX.checked_shl(8 - take).unwrap_or(0);
        if x & mask != y & mask {
            return false;
        }
        left -= take;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_block_holds_loopback_only() {
        let cidr = Cidr::parse("127.0.0.1/8").unwrap();
        assert!(cidr.contains("127.0.0.1".parse().unwrap()));
        assert!(cidr.contains("127.255.1.2".parse().unwrap()));
        assert!(cidr.contains("::ffff:127.0.0.9".parse().unwrap()));
        assert!(!cidr.contains("128.0.0.1".parse().unwrap()));
        assert!(!cidr.contains("::1".parse().unwrap()));
    }

    #[test]
    fn odd_prefixes_and_ipv6() {
        let cidr = Cidr::parse("10.0.0.0/13").unwrap();
        assert!(cidr.contains("10.7.255.255".parse().unwrap()));
        assert!(!cidr.contains("10.8.0.0".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        let v6 = Cidr::parse("::1/128").unwrap();
        assert!(v6.contains("::1".parse().unwrap()));
        assert!(!v6.contains("::2".parse().unwrap()));
    }

    #[test]
    fn bad_blocks_are_refused_in_gos_words() {
        for bad in [
            "127.0.0.1",
            "127.0.0.1/33",
            "x/8",
            "127.0.0.1/",
            "127.0.0.1/+8",
            "::1/129",
        ] {
            assert_eq!(
                Cidr::parse(bad).unwrap_err(),
                format!("invalid CIDR address: {bad}")
            );
        }
    }
}
