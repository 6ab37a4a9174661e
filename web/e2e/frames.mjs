// Per-frame cost from a Chromium trace (CDP Tracing, devtools.timeline
// categories) and the summary statistics the scroll bench prints. Pure
// functions over the trace's event list, so they are unit-tested
// (frames.test.mjs) without a browser.

/** Trace categories `mainThreadFrames` and `pipelineStates` need. */
export const TRACE_CATEGORIES = [
  'devtools.timeline',
  'disabled-by-default-devtools.timeline',
  'disabled-by-default-devtools.timeline.frame',
  'blink.user_timing',
];

/** Nearest-rank quantile of an ascending array; NaN when it is empty. */
export function quantile(sorted, q) {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil(q * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

/** p50/p95/p99/max and the count above `budget` of a list of milliseconds. */
export function summarize(values, budget) {
  const s = [...values].sort((a, b) => a - b);
  return {
    n: s.length,
    p50: quantile(s, 0.5),
    p95: quantile(s, 0.95),
    p99: quantile(s, 0.99),
    max: s.length ? s[s.length - 1] : NaN,
    over: s.filter((v) => v > budget).length,
  };
}

function findMark(events, name) {
  const m = events.find((e) => e.cat === 'blink.user_timing' && e.name === name);
  if (!m) throw new Error(`trace has no user-timing mark "${name}" (was blink.user_timing traced?)`);
  return m;
}

/**
 * Main-thread work per frame between the user-timing marks `startMark` and
 * `endMark`: the renderer main thread is the one that recorded the marks, a
 * frame runs from one BeginMainThreadFrame to the next, and its work is every
 * top-level task that started in it (the scroll event, React's render task,
 * rAF, style, layout, paint, commit). `cpu` is the thread's CPU time (tdur),
 * which other processes on a loaded machine do not inflate; `wall` includes
 * time the thread was runnable but descheduled. Milliseconds.
 */
export function mainThreadFrames(events, startMark, endMark) {
  const start = findMark(events, startMark);
  const end = findMark(events, endMark);
  const onMain = (e) => e.pid === start.pid && e.tid === start.tid && e.ts >= start.ts && e.ts <= end.ts;
  const begins = events
    .filter((e) => e.name === 'BeginMainThreadFrame' && onMain(e))
    .map((e) => e.ts)
    .sort((a, b) => a - b);
  if (begins.length < 2) throw new Error(`trace has ${begins.length} BeginMainThreadFrame events between the marks: need 2 or more`);
  const tasks = events.filter((e) => e.name === 'RunTask' && e.ph === 'X' && onMain(e)).sort((a, b) => a.ts - b.ts);
  const frames = begins.slice(0, -1).map((ts, i) => ({ start: ts, interval: (begins[i + 1] - ts) / 1000, cpu: 0, wall: 0 }));
  // A BeginMainThreadFrame lies inside the task that runs the frame, so a
  // task belongs to the frame whose begin is the last one before the task
  // ends. Tasks on one thread do not overlap, so ends are in order too; the
  // frame after the last begin is incomplete and left out.
  const last = begins[begins.length - 1];
  let f = 0;
  for (const t of tasks) {
    const endTs = t.ts + (t.dur ?? 0);
    if (endTs < begins[0]) continue;
    if (endTs >= last) break;
    while (begins[f + 1] <= endTs) f++;
    frames[f].wall += (t.dur ?? 0) / 1000;
    frames[f].cpu += (t.tdur ?? t.dur ?? 0) / 1000;
  }
  return frames;
}

/**
 * How the renderer's compositor reported each frame between the marks
 * (PipelineReporter: STATE_PRESENTED_ALL, STATE_PRESENTED_PARTIAL,
 * STATE_DROPPED, STATE_NO_UPDATE_DESIRED), counted by state.
 */
export function pipelineStates(events, startMark, endMark) {
  const start = findMark(events, startMark);
  const end = findMark(events, endMark);
  const states = {};
  for (const e of events) {
    if (e.name !== 'PipelineReporter' || e.ph !== 'b' || e.pid !== start.pid || e.ts < start.ts || e.ts > end.ts) continue;
    const state = e.args?.frame_reporter?.state ?? 'unknown';
    states[state] = (states[state] ?? 0) + 1;
  }
  return states;
}
