//! Live capture from a network interface through libpcap (the `pcap` crate).
//!
//! Throughput over latency: immediate mode stays off, so the kernel hands
//! packets over in blocks, at the latest when the read timeout expires. The
//! timeout is short (100 ms by default) so that a quiet interface still
//! yields [`Next::Idle`] often enough for the pipeline's time-driven work.

use std::os::fd::AsRawFd;

use pcap::{Active, Capture, Device};
use remora_core::Timestamp;

use crate::{Frame, FrameSource, LinkType, Next, SourceError, SourceStats, MAX_RECORD_LEN};

/// Largest kernel buffer accepted (libpcap takes an `int`).
const MAX_BUFFER_BYTES: u32 = i32::MAX as u32;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveConfig {
    /// Interface name, or `any` for all interfaces (Linux cooked framing).
    pub interface: String,
    /// A capture filter in pcap-filter(7) syntax, applied in the kernel.
    pub bpf: Option<String>,
    /// Bytes kept of each packet.
    pub snaplen: u32,
    /// Kernel capture buffer: what absorbs bursts while the reader is busy.
    pub buffer_bytes: u32,
    pub promisc: bool,
    /// How long a read waits for packets before returning [`Next::Idle`].
    pub timeout_ms: u32,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            interface: "any".into(),
            bpf: None,
            snaplen: 262_144,
            buffer_bytes: 64 << 20,
            promisc: true,
            timeout_ms: 100,
        }
    }
}

impl LiveConfig {
    pub fn new(interface: impl Into<String>) -> Self {
        LiveConfig {
            interface: interface.into(),
            ..LiveConfig::default()
        }
    }

    fn validate(&self) -> Result<(), SourceError> {
        let bad = |what: String| Err(SourceError::LiveConfig(what));
        if self.interface.is_empty() {
            return bad("the interface name is empty".into());
        }
        if self.snaplen == 0 || self.snaplen as usize > MAX_RECORD_LEN {
            return bad(format!(
                "snaplen {} is outside 1..={MAX_RECORD_LEN}",
                self.snaplen
            ));
        }
        if self.buffer_bytes == 0 || self.buffer_bytes > MAX_BUFFER_BYTES {
            return bad(format!(
                "buffer size {} is outside 1..={MAX_BUFFER_BYTES} bytes",
                self.buffer_bytes
            ));
        }
        // 0 would mean "block forever" to libpcap: the pipeline could then
        // neither flush nor notice a cancel on a quiet interface.
        if self.timeout_ms == 0 || self.timeout_ms > 10_000 {
            return bad(format!(
                "read timeout {} ms is outside 1..=10000",
                self.timeout_ms
            ));
        }
        Ok(())
    }
}

/// An open live capture. Frames borrow libpcap's buffer until the next call.
pub struct LiveCapture {
    cap: Capture<Active>,
    timeout_ms: i32,
    /// The last read returned a packet, so the ring may hold more: read
    /// again before waiting in poll().
    ring_has_data: bool,
    interface: String,
    link: LinkType,
    frames: u64,
    bytes: u64,
    /// libpcap's counters are 32-bit and wrap; these accumulate the deltas.
    pcap_totals: [u64; 3],
    pcap_last: [u32; 3],
    /// Set once `End` or an error was returned.
    done: bool,
}

impl LiveCapture {
    /// Opens and activates the capture and installs the filter.
    pub fn open(cfg: &LiveConfig) -> Result<Self, SourceError> {
        cfg.validate()?;
        let interface = cfg.interface.clone();
        let live_err = |message: String| SourceError::Live {
            interface: interface.clone(),
            message,
        };
        // Listing first gives the clear "no such interface" error with the
        // alternatives, whatever libpcap's message for it would be.
        let available = interface_names();
        if let Ok(names) = &available {
            if !names.contains(&interface) {
                return Err(SourceError::NoSuchInterface {
                    interface,
                    available: names.clone(),
                });
            }
        }
        let inactive = Capture::from_device(interface.as_str())
            .map_err(|e| classify_open_error(&interface, &e.to_string(), &available))?;
        let cap = inactive
            .snaplen(cfg.snaplen as i32)
            .buffer_size(cfg.buffer_bytes as i32)
            .promisc(cfg.promisc)
            .timeout(cfg.timeout_ms as i32)
            .immediate_mode(false)
            .open()
            .map_err(|e| classify_open_error(&interface, &e.to_string(), &available))?;
        let mut cap = cap;
        if let Some(expr) = &cfg.bpf {
            cap.filter(expr, true).map_err(|e| SourceError::BadFilter {
                expr: expr.clone(),
                message: pcap_message(&e),
            })?;
        }
        // libpcap's TPACKET_V3 read waits in poll() without a timeout until
        // the kernel retires a block, and the kernel only retires a block
        // that holds a packet: on a quiet interface a blocking read never
        // returns, so nothing would be flushed and a cancel never seen.
        // Non-blocking reads plus our own poll() with the timeout fix both.
        let cap = cap
            .setnonblock()
            .map_err(|e| live_err(format!("cannot make the capture non-blocking: {e}")))?;
        let dlt = cap.get_datalink().0;
        let link = LinkType::from_dlt(dlt as u32);
        if let LinkType::Other(n) = link {
            return Err(live_err(format!(
                "link type {n} is not supported (supported: Ethernet, Linux cooked v1/v2, \
                 raw IP, null/loop)"
            )));
        }
        Ok(LiveCapture {
            cap,
            timeout_ms: cfg.timeout_ms as i32,
            ring_has_data: false,
            interface,
            link,
            frames: 0,
            bytes: 0,
            pcap_totals: [0; 3],
            pcap_last: [0; 3],
            done: false,
        })
    }

    pub fn link_type(&self) -> LinkType {
        self.link
    }

    fn refresh_pcap_stats(&mut self) {
        // A failure here (the interface went away) surfaces on the next read.
        if let Ok(s) = self.cap.stats() {
            let now = [s.received, s.dropped, s.if_dropped];
            for ((total, last), now) in self.pcap_totals.iter_mut().zip(&self.pcap_last).zip(now) {
                *total += u64::from(now.wrapping_sub(*last));
            }
            self.pcap_last = now;
        }
    }
}

impl FrameSource for LiveCapture {
    fn next(&mut self) -> Next<'_> {
        if self.done {
            return Next::End;
        }
        if !self.ring_has_data {
            match wait_readable(self.cap.as_raw_fd(), self.timeout_ms) {
                Ok(true) => self.ring_has_data = true,
                Ok(false) => return Next::Idle,
                Err(e) => {
                    self.done = true;
                    return Next::Error(SourceError::Live {
                        interface: self.interface.clone(),
                        message: format!("waiting for packets: {e}"),
                    });
                }
            }
        }
        match self.cap.next_packet() {
            Ok(p) => {
                let number = self.frames;
                self.frames += 1;
                self.bytes += p.data.len() as u64;
                Next::Frame(Frame {
                    ts: Timestamp::from_secs_frac(p.header.ts.tv_sec, p.header.ts.tv_usec),
                    link: self.link,
                    data: p.data,
                    chunk: None,
                    wire_len: p.header.len,
                    file_offset: number,
                })
            }
            // The ring is drained: the next call waits in poll().
            Err(pcap::Error::TimeoutExpired) => {
                self.ring_has_data = false;
                Next::Idle
            }
            Err(pcap::Error::NoMorePackets) => {
                self.done = true;
                Next::End
            }
            Err(e) => {
                self.done = true;
                Next::Error(SourceError::Live {
                    interface: self.interface.clone(),
                    message: pcap_message(&e),
                })
            }
        }
    }

    fn bytes_consumed(&self) -> u64 {
        self.bytes
    }

    fn total_bytes(&self) -> Option<u64> {
        None
    }

    fn stats(&mut self) -> SourceStats {
        self.refresh_pcap_stats();
        SourceStats {
            frames: self.frames,
            bytes: self.bytes,
            received: self.pcap_totals[0],
            kernel_drops: self.pcap_totals[1],
            interface_drops: self.pcap_totals[2],
        }
    }

    fn name(&self) -> &str {
        &self.interface
    }

    fn is_live(&self) -> bool {
        true
    }
}

/// Waits up to `timeout_ms` for `fd` to become readable.
fn wait_readable(fd: std::os::fd::RawFd, timeout_ms: i32) -> std::io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if n >= 0 {
            return Ok(n > 0);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Names of the interfaces libpcap can capture on (`any` included on Linux).
pub fn interface_names() -> Result<Vec<String>, SourceError> {
    Device::list()
        .map(|list| list.into_iter().map(|d| d.name).collect())
        .map_err(|e| SourceError::Live {
            interface: "(listing interfaces)".into(),
            message: pcap_message(&e),
        })
}

fn pcap_message(e: &pcap::Error) -> String {
    match e {
        pcap::Error::PcapError(m) if !m.is_empty() => m.clone(),
        other => other.to_string(),
    }
}

/// libpcap says what went wrong only in its message (the `pcap` crate drops
/// the activation status code), so the two cases users can fix themselves
/// are recognised by their wording.
fn classify_open_error(
    interface: &str,
    message: &str,
    available: &Result<Vec<String>, SourceError>,
) -> SourceError {
    let lower = message.to_ascii_lowercase();
    if lower.contains("permission") || lower.contains("operation not permitted") {
        return SourceError::Permission {
            interface: interface.to_string(),
            message: message.to_string(),
            program: std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "<program>".into()),
        };
    }
    if lower.contains("no such device") {
        return SourceError::NoSuchInterface {
            interface: interface.to_string(),
            available: available.as_ref().cloned().unwrap_or_default(),
        };
    }
    SourceError::Live {
        interface: interface.to_string(),
        message: message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_errors_name_the_capabilities_and_setcap() {
        let e = classify_open_error(
            "eth0",
            "eth0: You don't have permission to perform this capture on that device \
             (socket: Operation not permitted)",
            &Ok(vec!["eth0".into()]),
        );
        let msg = e.to_string();
        assert!(matches!(e, SourceError::Permission { .. }), "{e:?}");
        for needle in [
            "eth0",
            "CAP_NET_RAW",
            "CAP_NET_ADMIN",
            "setcap",
            "Operation not permitted",
        ] {
            assert!(msg.contains(needle), "{needle:?} missing from {msg}");
        }
    }

    #[test]
    fn vanished_device_is_reported_with_the_alternatives() {
        let e = classify_open_error(
            "veth9",
            "veth9: No such device exists (SIOCGIFHWADDR: No such device)",
            &Ok(vec!["lo".into(), "any".into()]),
        );
        let msg = e.to_string();
        assert!(
            msg.contains("\"veth9\"") && msg.contains("lo, any"),
            "{msg}"
        );
    }

    #[test]
    fn other_libpcap_errors_keep_its_message() {
        let e = classify_open_error("lo", "lo: something odd", &Ok(vec![]));
        assert_eq!(
            e.to_string(),
            "live capture on lo failed: lo: something odd"
        );
    }

    #[test]
    fn settings_out_of_range_are_named() {
        let cases = [
            (
                LiveConfig {
                    snaplen: 0,
                    ..LiveConfig::default()
                },
                "snaplen 0",
            ),
            (
                LiveConfig {
                    buffer_bytes: u32::MAX,
                    ..LiveConfig::default()
                },
                "buffer size 4294967295",
            ),
            (
                LiveConfig {
                    timeout_ms: 0,
                    ..LiveConfig::default()
                },
                "read timeout 0 ms",
            ),
            (LiveConfig::new(""), "interface name is empty"),
        ];
        for (cfg, needle) in cases {
            let msg = cfg.validate().unwrap_err().to_string();
            assert!(msg.contains(needle), "{needle:?} missing from {msg}");
        }
    }

    #[test]
    fn libpcap_link_types_map_to_ours() {
        // DLT values libpcap reports on Linux for the interfaces we support.
        for (dlt, link) in [
            (1, LinkType::Ethernet),
            (113, LinkType::LinuxSll),
            (276, LinkType::LinuxSll2),
            (12, LinkType::RawIp),
            (101, LinkType::RawIp),
            (0, LinkType::Null),
            (108, LinkType::Loop),
        ] {
            assert_eq!(LinkType::from_dlt(dlt), link, "DLT {dlt}");
        }
    }
}
