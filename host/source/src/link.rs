/// Link-layer framing of a captured frame, as declared by the capture file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkType {
    Ethernet,
    /// Linux "cooked" capture v1 (`tcpdump -i any` on older libpcap).
    LinuxSll,
    /// Linux "cooked" capture v2 (`tcpdump -i any` on libpcap >= 1.10).
    LinuxSll2,
    /// Bare IP; the version nibble says v4 or v6.
    RawIp,
    Ipv4,
    Ipv6,
    /// BSD loopback: 4-byte address family in the *capturing* host's byte order.
    Null,
    /// OpenBSD loopback: 4-byte address family in network byte order.
    Loop,
    Other(u32),
}

impl LinkType {
    pub fn from_dlt(dlt: u32) -> Self {
        match dlt {
            0 => LinkType::Null,
            1 => LinkType::Ethernet,
            12 | 14 | 101 => LinkType::RawIp,
            108 => LinkType::Loop,
            113 => LinkType::LinuxSll,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            276 => LinkType::LinuxSll2,
            other => LinkType::Other(other),
        }
    }
}
