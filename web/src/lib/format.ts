// Formatting of times, durations, sizes and status classes for the tables.

import type { Endpoint, Entry } from '../api/types';

/** `18:32:20.066343` in UTC (entries carry µs precision). */
export function formatClock(rfc3339: string): string {
  const m = /T(\d{2}:\d{2}:\d{2})(\.\d+)?/.exec(rfc3339);
  if (!m) return rfc3339;
  const frac = (m[2] ?? '.000000').slice(1).padEnd(6, '0').slice(0, 6);
  return `${m[1]}.${frac}`;
}

/** Microseconds to a short human duration: 88 µs, 1.25 ms, 3.4 s, 2m 05s. */
export function formatDuration(us: number): string {
  if (!Number.isFinite(us) || us < 0) return '–';
  if (us < 1000) return `${Math.round(us)} µs`;
  if (us < 1_000_000) return `${trim(us / 1000)} ms`;
  const s = us / 1_000_000;
  if (s < 60) return `${trim(s)} s`;
  const m = Math.floor(s / 60);
  return `${m}m ${String(Math.floor(s % 60)).padStart(2, '0')}s`;
}

function trim(x: number): string {
  return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);
}

/** Bytes to 0 B, 512 B, 1.5 KiB, 20 MiB. */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return '–';
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${trim(v)} ${units[i]}`;
}

/** 1234567 → "1,234,567". */
export function formatCount(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** A rate per second with sensible precision. */
export function formatRate(r: number): string {
  if (!Number.isFinite(r)) return '–';
  return r >= 100 ? r.toFixed(0) : r >= 1 ? r.toFixed(1) : r.toFixed(2);
}

export function endpointLabel(e: Endpoint): string {
  const host = e.ip.includes(':') ? `[${e.ip}]` : e.ip;
  return e.name && e.name !== e.ip ? `${e.name}:${e.port}` : `${host}:${e.port}`;
}

export type StatusClass = 'ok' | 'redirect' | 'client-error' | 'server-error' | 'error' | 'none';

/**
 * How an entry's status is coloured: HTTP by class, DNS rcode ≠ 0, gRPC ≠ 0,
 * and plugin error flags (redis_error, sql_error, ...) as errors.
 */
export function statusClass(e: Pick<Entry, 'status' | 'flag' | 'vars' | 'complete'>): StatusClass {
  const flagged = Object.entries(e.vars ?? {}).some(
    ([k, v]) => v === true && (k.endsWith('_error') || k === 'error') && !k.includes('.'),
  );
  if (flagged) return 'error';
  const s = e.status;
  if (s === null || s === undefined) return 'none';
  if (e.flag === 'http') {
    if (s >= 500) return 'server-error';
    if (s >= 400) return 'client-error';
    if (s >= 300) return 'redirect';
    if (s >= 100) return 'ok';
    return 'none';
  }
  return s === 0 ? 'ok' : 'error';
}

/** The text shown in the status column. */
export function statusText(e: Pick<Entry, 'status' | 'vars' | 'complete'>): string {
  if (e.status !== null && e.status !== undefined) {
    const name = e.vars?.dns_rcode_name;
    return typeof name === 'string' && e.status !== 0 ? `${e.status} ${name}` : String(e.status);
  }
  if (!e.complete) return 'no reply';
  return '';
}

/** Stable colour slot per protocol so badges keep their colour across sessions. */
export function protocolHue(protocol: string): number {
  const known: Record<string, number> = { HTTP: 210, HTTP2: 230, gRPC: 260, DNS: 140, Redis: 0, Kafka: 30, AMQP: 50, MySQL: 190, PostgreSQL: 220, MongoDB: 110, MQTT: 300 };
  if (protocol in known) return known[protocol];
  let h = 0;
  for (const c of protocol) h = (h * 31 + c.charCodeAt(0)) % 360;
  return h;
}

/** Date → value for <input type="datetime-local"> in UTC, and back to RFC 3339. */
export function toLocalInput(d: Date): string {
  return d.toISOString().slice(0, 16);
}

export function fromLocalInput(v: string): string | null {
  if (!v) return null;
  const d = new Date(`${v}:00Z`);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}
