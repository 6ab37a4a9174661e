// Remora alert plugin: detects bursts of HTTP 5xx responses per destination.
//
// For each destination (ip:port) it keeps the last WINDOW_US of responses as
// (timestamp, is5xx) and fires "http-5xx-burst" when the window holds at
// least MIN_5XX server errors that are at least MIN_RATIO of the responses.
// After firing, a destination stays quiet for one window so a sustained
// outage yields one alert per window, not one per batch.

import { log, config } from "remora:plugin/host@0.7.0";

const NAME = "http-5xx-burst";
const VERSION = "0.1.0";
const RULE = "http-5xx-burst";

// Each knob can be overridden through the plugin's config (see README).
// Read on first use, not at module load: the module is pre-initialised at
// build time (Wizer), when the host's `config` import does not exist yet.
let WINDOW_US, MIN_5XX, MIN_RATIO, MAX_DESTINATIONS, MAX_SAMPLES_PER_DST;
let configured = false;

function configure() {
  if (configured) return;
  configured = true;
  WINDOW_US = knob("window-ms", 10_000, 100, 3_600_000) * 1000;
  MIN_5XX = knob("min-5xx", 5, 1, 100_000);
  MIN_RATIO = knob("min-ratio-percent", 50, 1, 100) / 100;
  // Bounds memory: a scan across many services must not grow state forever.
  MAX_DESTINATIONS = knob("max-destinations", 1024, 1, 1_000_000);
  // A single hot destination cannot hold more than this many samples; the
  // oldest are dropped first (the ratio then covers the newest samples only).
  MAX_SAMPLES_PER_DST = knob("max-samples", 4096, 16, 1_000_000);
}

/** dst key -> { samples: [{t, bad}], errors, quietUntil, name } */
const windows = new Map();
let droppedDestinations = 0;
let droppedSamples = 0;

function knob(key, fallback, min, max) {
  const raw = config(key);
  if (raw === undefined || raw === null) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    log("warn", `config ${key}=${JSON.stringify(raw)} is not an integer in ${min}..${max}; using ${fallback}`);
    return fallback;
  }
  return n;
}

function statusOf(fields, names) {
  if (!fields) return undefined;
  for (const f of fields) {
    if (names[f.name] === "status_code" && f.value.tag === "int") return Number(f.value.val);
  }
  return undefined;
}

function evict(w, now) {
  const cutoff = now - WINDOW_US;
  let drop = 0;
  while (drop < w.samples.length && w.samples[drop].t <= cutoff) {
    if (w.samples[drop].bad) w.errors -= 1;
    drop += 1;
  }
  if (drop > 0) w.samples.splice(0, drop);
}

function windowFor(key, dst) {
  let w = windows.get(key);
  if (w) {
    // Re-insert so Map order is least-recently-used first.
    windows.delete(key);
    windows.set(key, w);
    return w;
  }
  if (windows.size >= MAX_DESTINATIONS) {
    windows.delete(windows.keys().next().value);
    droppedDestinations += 1;
    if (droppedDestinations === 1 || droppedDestinations % 1000 === 0) {
      log("warn", `destination cap ${MAX_DESTINATIONS} reached; ${droppedDestinations} evicted so far`);
    }
  }
  w = { samples: [], errors: 0, quietUntil: -Infinity, name: dst.name, ids: [] };
  windows.set(key, w);
  return w;
}

function record(w, t, bad, id) {
  if (w.samples.length >= MAX_SAMPLES_PER_DST) {
    if (w.samples.shift().bad) w.errors -= 1;
    droppedSamples += 1;
  }
  w.samples.push({ t, bad });
  if (bad) {
    w.errors += 1;
    // Only the most recent failures are reported as evidence.
    w.ids.push(id);
    if (w.ids.length > MIN_5XX) w.ids.shift();
  }
}

function check(key, w, now) {
  if (now < w.quietUntil || w.errors < MIN_5XX) return undefined;
  const ratio = w.errors / w.samples.length;
  if (ratio < MIN_RATIO) return undefined;
  w.quietUntil = now + WINDOW_US;
  const pct = Math.round(ratio * 100);
  return {
    rule: RULE,
    severity: "warning",
    summary: `${w.name} (${key}): ${w.errors} of ${w.samples.length} responses were 5xx (${pct}%) in the last ${WINDOW_US / 1_000_000}s`,
    entryIds: w.ids.map((id) => id),
    labels: [
      ["dst", key],
      ["dst_name", w.name],
      ["errors", String(w.errors)],
      ["responses", String(w.samples.length)],
    ],
  };
}

export const alerter = {
  describe() {
    configure();
    return { name: NAME, version: VERSION, prefilter: "http", tickMs: 1000 };
  },

  onEntries(batch) {
    configure();
    const alerts = [];
    for (const e of batch.entries) {
      const status = statusOf(e.response, batch.names);
      // Requests without a response say nothing about the error rate.
      if (status === undefined) continue;
      const t = Number(e.timestampUs);
      const key = `${e.dst.ip}:${e.dst.port}`;
      const w = windowFor(key, e.dst);
      evict(w, t);
      record(w, t, status >= 500 && status <= 599, e.id);
      const alert = check(key, w, t);
      if (alert) alerts.push(alert);
    }
    return alerts;
  },

  onTick(nowUs) {
    configure();
    const now = Number(nowUs);
    for (const [key, w] of windows) {
      evict(w, now);
      if (w.samples.length === 0 && now >= w.quietUntil) windows.delete(key);
    }
    return [];
  },
};
