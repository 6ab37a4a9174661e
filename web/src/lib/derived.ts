// Statistics computed in the browser from the entries held in memory (the API
// has no top-talkers or slow-endpoint query yet).

import type { Entry } from '../api/types';
import { statusClass } from './format';

export interface Talker {
  pair: string;
  src: string;
  dst: string;
  count: number;
  bytes: number;
}

export interface SlowEndpoint {
  key: string;
  protocol: string;
  count: number;
  p95Us: number;
  maxUs: number;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

export function topTalkers(entries: Entry[], n = 10): Talker[] {
  const m = new Map<string, Talker>();
  for (const e of entries) {
    const src = e.src.name || e.src.ip;
    const dst = `${e.dst.name || e.dst.ip}:${e.dst.port}`;
    const key = `${src}→${dst}`;
    const t = m.get(key) ?? { pair: key, src, dst, count: 0, bytes: 0 };
    t.count++;
    t.bytes += e.requestSize + e.responseSize;
    m.set(key, t);
  }
  return [...m.values()].sort((a, b) => b.count - a.count || b.bytes - a.bytes).slice(0, n);
}

/** The endpoint an entry addresses: HTTP path without query, else the request summary. */
export function endpointKey(e: Entry): string {
  const path = e.vars?.path;
  if (typeof path === 'string') return `${String(e.vars?.method ?? '')} ${path}`.trim();
  return e.request?.summary || e.summary;
}

export function slowEndpoints(entries: Entry[], n = 10): SlowEndpoint[] {
  const m = new Map<string, { protocol: string; times: number[] }>();
  for (const e of entries) {
    if (!e.complete || e.elapsedTime <= 0) continue;
    const key = `${e.protocol} ${endpointKey(e)}`;
    const g = m.get(key) ?? { protocol: e.protocol, times: [] };
    g.times.push(e.elapsedTime);
    m.set(key, g);
  }
  return [...m.entries()]
    .map(([key, g]) => {
      const s = g.times.sort((a, b) => a - b);
      return { key, protocol: g.protocol, count: s.length, p95Us: percentile(s, 95), maxUs: s[s.length - 1] };
    })
    .sort((a, b) => b.p95Us - a.p95Us)
    .slice(0, n);
}

export function errorRate(entries: Entry[]): { errors: number; total: number } {
  let errors = 0;
  for (const e of entries) {
    const c = statusClass(e);
    if (c === 'server-error' || c === 'error') errors++;
  }
  return { errors, total: entries.length };
}

/** Requests/s timeline from successive cumulative `entries` counters. */
export interface RatePoint {
  t: number; // ms since epoch
  rate: number;
}

export function appendRate(points: RatePoint[], prev: { t: number; entries: number } | null, now: { t: number; entries: number }, max = 300): RatePoint[] {
  if (!prev || now.t <= prev.t) return points;
  // A counter that went backwards means the server restarted: no rate for this step.
  if (now.entries < prev.entries) return points;
  const rate = ((now.entries - prev.entries) * 1000) / (now.t - prev.t);
  const next = [...points, { t: now.t, rate }];
  return next.length > max ? next.slice(next.length - max) : next;
}
