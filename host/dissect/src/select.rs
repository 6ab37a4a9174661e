//! Choosing a flow's plugin: port hints order the candidates, probes decide.

use remora_core::{Direction, Timestamp, Transport};
use remora_entry::Catalog;
use remora_flow::FlowInfo;
use remora_runtime::wit::{self, ProbeResult};

use crate::backend::Backend;
use crate::DissectCounters;

struct Candidate {
    plugin: u16,
    protocol: u16,
    /// The flow's server port is one of this protocol's well-known ports.
    hinted: bool,
    alive: bool,
}

/// Bytes seen while probing, replayed into the chosen plugin in arrival order.
pub(crate) struct Chunk {
    pub dir: Direction,
    pub offset: u64,
    pub ts: Timestamp,
    pub data: Vec<u8>,
}

/// The highest probe confidence the contract allows.
const CERTAIN: u8 = 100;

pub(crate) enum Verdict {
    Undecided,
    Raw,
    Chosen { plugin: u16, protocol: u16 },
}

pub(crate) struct Selection {
    transport: Transport,
    /// Port-hinted candidates first, then the rest, each in catalog order.
    candidates: Vec<Candidate>,
    chunks: Vec<Chunk>,
    bytes: [usize; 2],
    /// New bytes since the last probe round, per direction.
    dirty: [bool; 2],
    /// Direction ended or its buffer is full: no more bytes will come to probe.
    settled: [bool; 2],
    next_offset: [u64; 2],
}

impl Selection {
    pub(crate) fn new(catalog: &Catalog, flow: &FlowInfo) -> Self {
        let mut hinted = Vec::new();
        let mut others = Vec::new();
        for (pi, plugin) in catalog.plugins.iter().enumerate() {
            let matching = plugin
                .protocols
                .iter()
                .enumerate()
                .filter(|(_, p)| p.transport == flow.transport);
            let mut chosen = None;
            for (qi, p) in matching {
                let hint = p.ports.contains(&flow.server.port);
                if chosen.is_none() || hint {
                    chosen = Some((qi, hint));
                }
                if hint {
                    break;
                }
            }
            if let Some((qi, hint)) = chosen {
                let c = Candidate {
                    plugin: pi as u16,
                    protocol: qi as u16,
                    hinted: hint,
                    alive: true,
                };
                if hint {
                    hinted.push(c)
                } else {
                    others.push(c)
                }
            }
        }
        hinted.extend(others);
        Selection {
            transport: flow.transport,
            candidates: hinted,
            chunks: Vec::new(),
            bytes: [0; 2],
            dirty: [false; 2],
            settled: [false; 2],
            next_offset: [0; 2],
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.candidates.is_empty()
    }

    pub(crate) fn buffered_bytes(&self) -> u64 {
        (self.bytes[0] + self.bytes[1]) as u64
    }

    pub(crate) fn next_offset(&self, dir: Direction) -> u64 {
        self.next_offset[dir.index()]
    }

    /// Buffer bytes seen while probing. Whole packets are kept for the replay
    /// (a packet that crosses the probe limit is not cut: what follows it must
    /// line up), so a direction holds at most `cap` bytes plus one packet;
    /// probes see at most `cap` bytes.
    pub(crate) fn push(
        &mut self,
        dir: Direction,
        offset: u64,
        ts: Timestamp,
        data: &[u8],
        cap: usize,
    ) {
        let i = dir.index();
        if self.bytes[i] >= cap || data.is_empty() {
            self.settled[i] |= self.bytes[i] >= cap;
            return;
        }
        self.chunks.push(Chunk {
            dir,
            offset,
            ts,
            data: data.to_vec(),
        });
        self.bytes[i] += data.len();
        self.next_offset[i] = offset + data.len() as u64;
        self.dirty[i] = true;
        if self.bytes[i] >= cap {
            self.settled[i] = true;
        }
    }

    /// Bytes were lost while probing: what was buffered in that direction no
    /// longer lines up with what follows, so probing restarts after the hole.
    pub(crate) fn gap(&mut self, dir: Direction, len: u64) {
        let i = dir.index();
        self.chunks.retain(|c| c.dir != dir);
        self.bytes[i] = 0;
        self.next_offset[i] += len;
    }

    pub(crate) fn finish_dir(&mut self, dir: Direction) {
        self.settled[dir.index()] = true;
        self.dirty[dir.index()] = true;
    }

    fn probe_input(&self, dir: Direction, cap: usize) -> Vec<u8> {
        let mut of_dir = self.chunks.iter().filter(|c| c.dir == dir);
        if self.transport == Transport::Udp {
            // One datagram per probe, as per feed.
            return of_dir
                .next_back()
                .map(|c| c.data.clone())
                .unwrap_or_default();
        }
        let mut v = Vec::with_capacity(self.bytes[dir.index()].min(cap));
        for c in of_dir {
            let room = cap - v.len();
            v.extend_from_slice(&c.data[..room.min(c.data.len())]);
            if v.len() == cap {
                break;
            }
        }
        v
    }

    pub(crate) fn run<B: Backend>(
        &mut self,
        backend: &mut B,
        info: &wit::FlowInfo,
        cap: usize,
        counters: &mut DissectCounters,
    ) -> Verdict {
        let mut best: Option<(u8, usize)> = None;
        'dirs: for dir in Direction::BOTH {
            let i = dir.index();
            if !self.dirty[i] || self.bytes[i] == 0 {
                continue;
            }
            let input = self.probe_input(dir, cap);
            for (ci, c) in self.candidates.iter_mut().enumerate() {
                if !c.alive {
                    continue;
                }
                counters.plugin_calls += 1;
                match backend.probe(c.plugin, info, dir, &input) {
                    Ok(ProbeResult::Yes(conf)) => {
                        if best.is_none_or(|(b, _)| conf > b) {
                            best = Some((conf, ci));
                        }
                        // A port-hinted protocol that recognises the bytes
                        // wins outright: the other plugins are not asked.
                        // Nor are they after a certain answer: nothing can
                        // beat it (ties go to the earlier candidate), so the
                        // choice is the one asking everyone would make.
                        if c.hinted || conf == CERTAIN {
                            break 'dirs;
                        }
                    }
                    Ok(ProbeResult::No) => c.alive = false,
                    Ok(ProbeResult::NeedMore) => {}
                    Err(fault) => {
                        if !fault.consequence {
                            counters.plugin_faults += 1;
                            counters.drops.add(remora_core::DropReason::PluginFault, 1);
                        }
                        c.alive = false;
                    }
                }
            }
        }
        self.dirty = [false; 2];
        if let Some((_, ci)) = best {
            let c = &self.candidates[ci];
            return Verdict::Chosen {
                plugin: c.plugin,
                protocol: c.protocol,
            };
        }
        let alive = self.candidates.iter().any(|c| c.alive);
        let udp_undecided = self.transport == Transport::Udp;
        if !alive || (self.settled[0] && self.settled[1]) || udp_undecided && self.chunks.len() >= 8
        {
            Verdict::Raw
        } else {
            Verdict::Undecided
        }
    }

    pub(crate) fn into_chunks(self) -> Vec<Chunk> {
        self.chunks
    }
}
