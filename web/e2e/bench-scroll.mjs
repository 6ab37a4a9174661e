// Scroll benchmark: what a frame of the entry list costs while scrolling with
// 100,000 entries, next to same-run baselines, plus the initial JS the app
// loads. Usage: npm run bench:scroll   (builds dist-bench — the app plus a
// bench-only hook to inject entries — and serves it with vite preview)
//
// Two browser sessions, each running every scenario:
// - frame cost: Chromium with the frame-rate limit off, so frames are produced
//   back to back instead of on the 60 Hz vsync, and the interval between two
//   rAF callbacks is what a whole frame costs (main thread, raster, draw) —
//   it can show a frame cheaper than 16.7 ms. Headless Chromium only drops the
//   limit with all three UNTHROTTLED switches (the idle scenario shows it:
//   its frames take well under a millisecond). Wall time, so on a loaded
//   machine it includes waiting for a CPU.
// - traced at the normal 60 Hz: CDP tracing (devtools.timeline) gives the
//   renderer main thread's work per frame (every task from one
//   BeginMainThreadFrame to the next: scroll event, React render, rAF, style,
//   layout, paint, commit) as thread CPU time, which other processes barely
//   inflate, and as wall time; and Chromium's own per-frame verdicts
//   (PipelineReporter states: presented_all, presented_partial, dropped,
//   no_update_desired).
// Both also count frames whose rows did not cover the viewport when the
// frame ran its rAF callbacks (the list lagging the scroll position).
//
// Scenarios: fling-100 (baseline: the same list with 100 entries), fling-100k
// (400 px a frame through 100,000 entries), jumps-100k (a different place in
// the list every frame: every row is new), idle-100k (no scrolling: what an
// empty frame costs on this machine right now). The load average is printed
// before and after. The gate: in fling-100k and jumps-100k the p95
// main-thread CPU time per frame is under BENCH_BUDGET_MS (16), and the
// initial load fetches under 500 KB of gzipped JS.
//
// Environment: BENCH_ENTRIES (100000), BENCH_FRAMES per run (600),
// BENCH_BUDGET_MS (16), BENCH_ONLY=label,label to run some scenarios,
// BENCH_SAVE_TRACE=1 to write each traced run to
// e2e/artifacts/bench-scroll-<label>.trace.json (DevTools → Performance →
// Load profile). Results also go to e2e/artifacts/bench-scroll.json.
import { spawn, execSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { ARTIFACTS, launch, watchConsole } from './browser.mjs';
import { TRACE_CATEGORIES, mainThreadFrames, pipelineStates, summarize } from './frames.mjs';

const PORT = Number(process.env.BENCH_PORT ?? 4179);
const N = Number(process.env.BENCH_ENTRIES ?? 100_000);
const STEPS = Number(process.env.BENCH_FRAMES ?? 600);
const BUDGET = Number(process.env.BENCH_BUDGET_MS ?? 16);
const JS_LIMIT_KB = 500;
// At 60 Hz a frame interval above this means at least one vsync went by without a new frame.
const MISSED_VSYNC = 25;
const UNTHROTTLED = ['--disable-frame-rate-limit', '--disable-gpu-vsync', '--run-all-compositor-stages-before-draw'];
for (const [name, v] of [['BENCH_ENTRIES', N], ['BENCH_FRAMES', STEPS], ['BENCH_BUDGET_MS', BUDGET]]) {
  if (!(v > 0)) {
    console.error(`${name} must be a positive number, got ${JSON.stringify(process.env[name])}`);
    process.exit(2);
  }
}

// A stuck browser must not hold the shared machine: give up after 10 minutes.
setTimeout(() => {
  console.error('scroll bench: gave up after 10 minutes');
  process.exit(1);
}, 600_000).unref();
const progress = (m) => console.error(`scroll bench: ${m}`);

const load = () => loadavg().map((l) => l.toFixed(2)).join(' ');
const loadBefore = load();

execSync('npx vite build --mode bench --outDir dist-bench', { stdio: 'inherit' });
const server = spawn('npx', ['vite', 'preview', '--outDir', 'dist-bench', '--port', String(PORT), '--strictPort'], { stdio: 'ignore', detached: true });
let stopping = false;
const stop = () => {
  stopping = true;
  try {
    process.kill(-server.pid);
  } catch {
    /* already gone */
  }
};
process.on('exit', stop);
// With --strictPort a busy port makes vite preview exit, and the bench would
// then measure whatever else answers there (say, a preview left over from an
// earlier run): stop instead.
server.on('exit', (code) => {
  if (stopping) return;
  console.error(`vite preview exited (status ${code}) before the bench finished: is port ${PORT} in use? (BENCH_PORT picks another)`);
  process.exit(1);
});

let ctx;
let page;
/** Opens the app in a fresh browser; returns the gzipped size of the scripts the first load ran. */
async function openBrowser(flags) {
  ctx = await launch(flags);
  loaded = 0;
  page = await ctx.newPage();
  page.setDefaultTimeout(60_000);
  // With no server behind /graphql the page shows "cannot reach"; those network errors are expected here.
  watchConsole(page);
  // The scripts the first load fetches (entry chunk and its module preloads;
  // lazy chunks such as the service map come later), gzipped as a server would.
  const scripts = new Map();
  const onResponse = (r) => {
    if (r.request().resourceType() === 'script' && r.ok()) scripts.set(r.url(), r.body());
  };
  page.on('response', onResponse);
  for (let i = 0; ; i++) {
    try {
      await page.goto(`http://127.0.0.1:${PORT}/`);
      break;
    } catch (e) {
      if (i === 50) throw new Error(`vite preview did not answer on port ${PORT}: ${e.message}`, { cause: e });
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  // Mounted means the entry chunk and everything it imports statically have run.
  await page.waitForFunction(() => typeof window.__remoraInject === 'function');
  page.off('response', onResponse);
  let bytes = 0;
  for (const body of scripts.values()) bytes += gzipSync(await body, { level: 9 }).length;
  return { kb: bytes / 1024, scripts: scripts.size };
}

let loaded = 0;
/** Reloads the app with `n` entries, unless it has them already. */
async function loadEntries(n) {
  if (loaded === n) return;
  loaded = n;
  await page.reload();
  await page.waitForFunction(() => typeof window.__remoraInject === 'function');
  await page.evaluate((n) => {
    const protos = [['HTTP', 'http', 'tcp'], ['DNS', 'dns', 'udp'], ['Redis', 'redis', 'tcp']];
    const batch = [];
    for (let i = 1; i <= n; i++) {
      const [protocol, flag, transport] = protos[i % 3];
      const status = flag === 'http' ? [200, 200, 404, 503][i % 4] : flag === 'dns' ? (i % 7 === 0 ? 3 : 0) : null;
      batch.push({
        id: String(i), timestamp: new Date(Date.UTC(2026, 0, 1) + i * 1000).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z'),
        elapsedTime: (i * 37) % 250000, protocol, flag, transport, flowId: i >> 3,
        src: { ip: `10.0.${(i >> 8) & 255}.${i & 255}`, port: 40000 + (i % 20000), name: `client-${i % 50}` },
        dst: { ip: '10.1.0.1', port: 8080, name: `svc-${i % 20}` }, complete: true,
        summary: flag === 'http' ? `GET /api/items/${i} → ${status}` : flag === 'dns' ? `A host${i}.test → ${status}` : `GET session:${i}`,
        status, requestSize: 100 + (i % 900), responseSize: 200 + (i % 5000), request: null, response: null, vars: { [flag]: true },
      });
    }
    window.__remoraInject(batch);
  }, n);
  await page.waitForFunction((n) => document.querySelector('[data-testid=entry-count]')?.textContent?.startsWith(n.toLocaleString('en-US')), n, { timeout: 30000 });
}

/**
 * Runs STEPS animation frames; each frame moves the list by `motion`: 'fling'
 * scrolls 400 px a frame (wrapping at the end), 'jump' lands somewhere else
 * in the whole list, 'idle' does not scroll. Returns the frame intervals and how many frames showed rows
 * that did not cover the viewport (the list had not caught up with the
 * scroll position by the time the frame ran its rAF callbacks).
 */
function runFrames(motion, mark) {
  return page.evaluate(
    async ({ steps, motion, mark }) => {
      const list = document.querySelector('[data-testid=entry-list]');
      const total = Number(list.getAttribute('aria-rowcount'));
      list.scrollTop = 0;
      await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
      const max = list.scrollHeight - list.clientHeight;
      const rowHeight = list.querySelector('[data-entry-id]').getBoundingClientRect().height;
      const times = [];
      let stale = 0;
      // Entries are injected with ids 1..total and listed newest first, so the row for id k is at index total - k.
      const covered = () => {
        const ids = [...list.querySelectorAll('[data-entry-id]')].map((r) => Number(r.getAttribute('data-entry-id')));
        const first = total - Math.max(...ids);
        const last = total - Math.min(...ids);
        // The sticky header covers the first row's height of the viewport.
        const top = Math.floor(list.scrollTop / rowHeight);
        const bottom = Math.min(total - 1, Math.floor((list.scrollTop + list.clientHeight - rowHeight) / rowHeight));
        return first <= top && last >= bottom;
      };
      performance.mark(`${mark}-start`);
      await new Promise((resolve) => {
        let i = 0;
        const tick = (t) => {
          times.push(t);
          if (motion !== 'idle') {
            if (i > 0 && !covered()) stale++;
            list.scrollTop = motion === 'fling' ? (i * 400) % max : (((i * 7919) % 1000) / 1000) * max;
          }
          if (++i < steps) requestAnimationFrame(tick);
          else resolve();
        };
        requestAnimationFrame(tick);
      });
      performance.mark(`${mark}-end`);
      return { intervals: times.slice(1).map((t, i) => t - times[i]), stale, rows: list.querySelectorAll('[data-entry-id]').length };
    },
    { steps: STEPS, motion, mark },
  );
}

async function traced(fn) {
  const cdp = await ctx.newCDPSession(page);
  const events = [];
  cdp.on('Tracing.dataCollected', (e) => events.push(...e.value));
  await cdp.send('Tracing.start', { traceConfig: { includedCategories: TRACE_CATEGORIES }, transferMode: 'ReportEvents' });
  const out = await fn();
  const complete = new Promise((r) => cdp.once('Tracing.tracingComplete', r));
  await cdp.send('Tracing.end');
  await complete;
  await cdp.detach();
  return { out, events };
}

// [label, entries, motion]
const SCENARIOS = [
  ['fling-100', 100, 'fling'],
  ['fling-100k', N, 'fling'],
  ['jumps-100k', N, 'jump'],
  ['idle-100k', N, 'idle'],
].filter(([label]) => !process.env.BENCH_ONLY || process.env.BENCH_ONLY.split(',').includes(label));

// Frame cost: frames back to back, untraced (tracing with the frame-rate
// limit off records every spin of the compositor: hundreds of thousands of
// events a second, which would swamp both the browser and the result).
const initial = await openBrowser(UNTHROTTLED);
const results = {};
for (const [label, entries, motion] of SCENARIOS) {
  progress(`${label}: frame cost`);
  await loadEntries(entries);
  const run = await runFrames(motion, `${label}-plain`);
  results[label] = { label, motion, rows: run.rows, frameInterval: summarize(run.intervals, BUDGET), staleFrames: run.stale };
}
await ctx.close();

// Main-thread work and dropped frames: the normal 60 Hz pacing, traced.
await openBrowser([]);
for (const [label, entries, motion] of SCENARIOS) {
  progress(`${label}: traced`);
  await loadEntries(entries);
  const { out: run, events } = await traced(() => runFrames(motion, label));
  const frames = mainThreadFrames(events, `${label}-start`, `${label}-end`);
  // Opens in DevTools' Performance panel ("Load profile") for a closer look.
  if (process.env.BENCH_SAVE_TRACE) writeFileSync(join(ARTIFACTS, `bench-scroll-${label}.trace.json`), JSON.stringify({ traceEvents: events }));
  Object.assign(results[label], {
    vsyncInterval: summarize(run.intervals, MISSED_VSYNC),
    mainCpu: summarize(frames.map((f) => f.cpu), BUDGET),
    mainWall: summarize(frames.map((f) => f.wall), BUDGET),
    compositor: pipelineStates(events, `${label}-start`, `${label}-end`),
  });
  results[label].staleFrames += run.stale;
}
await page.screenshot({ path: join(ARTIFACTS, 'bench-scroll.png') });
await ctx.close();
stop();
const loadAfter = load();

const ms = (v) => v.toFixed(2).padStart(6);
const line = (s, over) => `p50 ${ms(s.p50)}  p95 ${ms(s.p95)}  p99 ${ms(s.p99)}  max ${ms(s.max)}  ${over}: ${s.over}/${s.n}`;
console.log(`\nscroll bench: ${cpus().length} CPUs, load average ${loadBefore} before, ${loadAfter} after; ${STEPS} frames a run; ms`);
for (const r of Object.values(results)) {
  console.log(`\n${r.label} (${r.rows} rows in the DOM)`);
  console.log(`  frame cost, no vsync       ${line(r.frameInterval, `>${BUDGET} ms`)}`);
  console.log(`  frame interval at 60 Hz    ${line(r.vsyncInterval, `>${MISSED_VSYNC} ms`)}`);
  console.log(`  main-thread CPU per frame  ${line(r.mainCpu, `>${BUDGET} ms`)}`);
  console.log(`  main-thread wall per frame ${line(r.mainWall, `>${BUDGET} ms`)}`);
  const states = Object.entries(r.compositor).map(([k, v]) => `${k.replace('STATE_', '').toLowerCase()} ${v}`);
  console.log(`  Chromium's frame verdicts at 60 Hz (PipelineReporter): ${states.join(', ') || 'none'}`);
  console.log(`  rows behind the scroll position in ${r.staleFrames} of ${r.motion === 'idle' ? 0 : 2 * (STEPS - 1)} frames`);
}
const [small, big] = [results['fling-100'], results['fling-100k']];
if (small && big) {
  console.log(`\n${N} vs 100 entries, same motion, same run: main-thread CPU p50 ${big.mainCpu.p50.toFixed(2)} vs ${small.mainCpu.p50.toFixed(2)} ms, p95 ${big.mainCpu.p95.toFixed(2)} vs ${small.mainCpu.p95.toFixed(2)} ms`);
}
console.log(`\ninitial JS: ${initial.kb.toFixed(1)} KB gzipped in ${initial.scripts} scripts (limit ${JS_LIMIT_KB} KB)`);
writeFileSync(join(ARTIFACTS, 'bench-scroll.json'), JSON.stringify({ cpus: cpus().length, loadBefore, loadAfter, steps: STEPS, budgetMs: BUDGET, initialJsKb: initial.kb, results }, null, 2));

let failed = false;
for (const label of ['fling-100k', 'jumps-100k'].filter((l) => results[l])) {
  const cpu = results[label].mainCpu;
  if (!(cpu.p95 < BUDGET)) {
    console.error(`FAIL: ${label}: p95 main-thread CPU time per frame is ${cpu.p95.toFixed(2)} ms, over the ${BUDGET} ms budget`);
    failed = true;
  }
}
if (!(initial.kb < JS_LIMIT_KB)) {
  console.error(`FAIL: the initial load fetches ${initial.kb.toFixed(1)} KB of gzipped JS, over ${JS_LIMIT_KB} KB`);
  failed = true;
}
process.exit(failed ? 1 : 0);
