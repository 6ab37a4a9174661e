// Scroll benchmark: 100,000 synthetic entries injected through the bench-only
// hook (`vite build --mode bench`), then frame times measured while scrolling.
// Usage: npm run bench:scroll   (builds dist-bench and serves it with vite preview)
import { spawn, execSync } from 'node:child_process';
import { join } from 'node:path';
import { ARTIFACTS, launch, watchConsole } from './browser.mjs';

const PORT = Number(process.env.BENCH_PORT ?? 4179);
const N = Number(process.env.BENCH_ENTRIES ?? 100_000);
execSync('npx vite build --mode bench --outDir dist-bench', { stdio: 'inherit' });
const server = spawn('npx', ['vite', 'preview', '--outDir', 'dist-bench', '--port', String(PORT), '--strictPort'], { stdio: 'ignore', detached: true });
const stop = () => {
  try {
    process.kill(-server.pid);
  } catch {
    /* already gone */
  }
};
process.on('exit', stop);

const ctx = await launch();
const page = await ctx.newPage();
// With no server behind /graphql the page shows "cannot reach"; those network errors are expected here.
watchConsole(page);
for (let i = 0; i < 50; i++) {
  try {
    await page.goto(`http://127.0.0.1:${PORT}/`);
    break;
  } catch {
    await new Promise((r) => setTimeout(r, 200));
  }
}
await page.waitForFunction(() => typeof window.__remoraInject === 'function');
await page.evaluate((n) => {
  const protos = [['HTTP', 'http', 'tcp'], ['DNS', 'dns', 'udp'], ['Redis', 'redis', 'tcp']];
  const batch = [];
  for (let i = 1; i <= n; i++) {
    const [protocol, flag, transport] = protos[i % 3];
    const status = flag === 'http' ? [200, 200, 404, 503][i % 4] : flag === 'dns' ? (i % 7 === 0 ? 3 : 0) : null;
    batch.push({
      id: String(i), timestamp: new Date(Date.UTC(2026, 0, 1) + i * 1000).toISOString().replace('Z', '000Z').replace(/\.(\d{3})000Z/, '.$1000Z'),
      elapsedTime: (i * 37) % 250000, protocol, flag, transport, flowId: i >> 3,
      src: { ip: `10.0.${(i >> 8) & 255}.${i & 255}`, port: 40000 + (i % 20000), name: `client-${i % 50}` },
      dst: { ip: '10.1.0.1', port: 8080, name: `svc-${i % 20}` }, complete: true,
      summary: flag === 'http' ? `GET /api/items/${i} → ${status}` : flag === 'dns' ? `A host${i}.test → ${status}` : `GET session:${i}`,
      status, requestSize: 100 + (i % 900), responseSize: 200 + (i % 5000), request: null, response: null, vars: { [flag]: true },
    });
  }
  window.__remoraInject(batch);
}, N);
await page.waitForFunction((n) => document.querySelector('[data-testid=entry-count]')?.textContent?.startsWith(n.toLocaleString('en-US')), N, { timeout: 30000 });

const result = await page.evaluate(async () => {
  const list = document.querySelector('[data-testid=entry-list]');
  const frames = [];
  let last = performance.now();
  const max = list.scrollHeight - list.clientHeight;
  const steps = 600; // ~10 s at 60 fps: a fast fling down then jumps across the list
  await new Promise((resolve) => {
    let i = 0;
    const tick = (t) => {
      frames.push(t - last);
      last = t;
      list.scrollTop = i < 300 ? i * 400 : ((i * 7919) % 1000) / 1000 * max;
      if (++i < steps) requestAnimationFrame(tick);
      else resolve();
    };
    requestAnimationFrame(tick);
  });
  frames.shift();
  const s = [...frames].sort((a, b) => a - b);
  return { slow: frames.filter((f) => f > 25).map((f) => Math.round(f)), slowAt: frames.map((f, i) => (f > 25 ? i : -1)).filter((i) => i >= 0), frames: s.length, p50: s[Math.floor(s.length * 0.5)], p95: s[Math.floor(s.length * 0.95)], max: s[s.length - 1], rows: document.querySelectorAll('[data-entry-id]').length };
});
await page.screenshot({ path: join(ARTIFACTS, 'bench-scroll.png') });
await ctx.close();
stop();
console.log(`scrolled ${N} entries: ${result.frames} frames, p50 ${result.p50.toFixed(1)} ms, p95 ${result.p95.toFixed(1)} ms, max ${result.max.toFixed(1)} ms (${result.rows} rows in the DOM); frames over 25 ms: ${result.slow.length} (${result.slow.join(', ')} ms at frames ${result.slowAt.join(', ')})`);
if (result.p95 > 50) {
  console.error('p95 frame time above 50 ms: scrolling is not smooth');
  process.exit(1);
}
process.exit(0);
