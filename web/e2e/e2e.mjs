// End-to-end check of the dashboard against a running Remora server.
// Usage: REMORA_URL=http://127.0.0.1:8899 npm run e2e
// The server must be capturing (or have stored) HTTP, DNS and Redis traffic, and
// keep producing some while this runs (e.g. `remora tap -i lo` plus a load loop).
import { join } from 'node:path';
import { ARTIFACTS, launch, watchConsole } from './browser.mjs';

const base = process.env.REMORA_URL;
if (!base) {
  console.error('REMORA_URL is not set: start `remora` and pass its address, e.g. REMORA_URL=http://127.0.0.1:8899');
  process.exit(2);
}

const failures = [];
function check(name, ok, detail = '') {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}${detail ? ` — ${detail}` : ''}`);
  if (!ok) failures.push(name);
}

const ctx = await launch();
const page = await ctx.newPage();
const errors = watchConsole(page);
const shot = (n) => page.screenshot({ path: join(ARTIFACTS, `${n}.png`) });
const ids = () => page.$$eval('[data-entry-id]', (rows) => rows.map((r) => Number(r.getAttribute('data-entry-id'))));
const protocols = () => page.$$eval('[data-entry-id]', (rows) => rows.map((r) => r.getAttribute('data-protocol')));
const rows = () => page.$$eval('[data-entry-id]', (els) => els.map((r) => ({ protocol: r.getAttribute('data-protocol'), summary: r.querySelector('.c-summary')?.textContent ?? '' })));
// Expectations from the test runner (tests/web/e2e.sh): "a>b/PROTO ..." and "name=address ...".
const expectEdges = (process.env.E2E_EXPECT_EDGES ?? '').split(/\s+/).filter(Boolean);
const expectDns = Object.fromEntries((process.env.E2E_EXPECT_DNS ?? '').split(/\s+/).filter(Boolean).map((kv) => kv.split('=')));

/** Waits until the list is non-empty and every row satisfies `pred(row, arg)`; `pred` runs in the page, so it sees only its arguments. */
async function waitRows(pred, arg = null) {
  await page.waitForFunction(([s, a]) => {
    const f = (0, eval)(s);
    const rs = [...document.querySelectorAll('[data-entry-id]')].map((r) => ({ protocol: r.getAttribute('data-protocol'), summary: r.querySelector('.c-summary')?.textContent ?? '' }));
    return rs.length > 0 && rs.every((r) => f(r, a));
  }, [pred.toString(), arg], { timeout: 15000 });
  return true;
}
async function applyFilter(f, pred, arg = null) {
  await page.fill('[data-testid=filter-input]', f);
  await page.keyboard.press('Escape');
  await page.click('[data-testid=filter-apply]');
  await waitRows(pred, arg);
}
async function openFirst() {
  await page.click('[data-entry-id] >> nth=0');
  await page.waitForSelector('[data-testid=details-response] table.fields');
}
/** The top-level fields of one side of the details pane, name → text. */
const fields = (side) => page.$$eval(`[data-testid=details-${side}] table.fields > tbody > tr`, (trs) =>
  Object.fromEntries(trs.map((tr) => [tr.querySelector(':scope > th').textContent, tr.querySelector(':scope > td').textContent])));

const token = process.env.REMORA_TOKEN ?? '';

try {
  // A server with a token is opened once with it in the address.
  await page.goto(token ? `${base}/?token=${encodeURIComponent(token)}` : base, { waitUntil: 'load' });
  await page.waitForSelector('[data-testid=connection]:has-text("connected")', { timeout: 15000 });
  check('server reachable', (await page.$('[data-testid=unreachable]')) === null);
  if (token) check('the token leaves the address bar', !new URL(page.url()).searchParams.has('token'), page.url());

  // 1. Entries appear, and new ones arrive live (the newest id grows without reloading).
  await page.waitForSelector('[data-entry-id]', { timeout: 20000 });
  const first = Math.max(...(await ids()));
  let live = false;
  for (let i = 0; i < 30 && !live; i++) {
    await page.waitForTimeout(1000);
    live = Math.max(...(await ids())) > first;
  }
  check('entries arrive live', live, `newest id was ${first}`);
  await shot('01-stream');

  // 2. Typing a filter narrows the list to one protocol.
  const before = new Set(await protocols());
  check('stream shows several protocols before filtering', before.size >= 2, [...before].join(','));
  await applyFilter('dns', (r) => r.protocol === 'DNS');
  check('typing a filter narrows the list', (await rows()).every((r) => r.protocol === 'DNS'));
  check('filter is in the URL', new URL(page.url()).searchParams.get('q') === 'dns');
  await shot('02-filtered');

  // 3. DNS details: the answer the server gave for the question asked; then
  // clicking the question adds a term and the list narrows to that name.
  await applyFilter('dns && dns_rcode == 0', (r) => r.protocol === 'DNS' && /→ NOERROR$/.test(r.summary));
  await openFirst();
  let req = await fields('request');
  let resp = await fields('response');
  const question = (req.dns_questions ?? '').trim();
  const answer = expectDns[question];
  check('DNS details: request has a known question', answer !== undefined || Object.keys(expectDns).length === 0, question);
  check('DNS details: response has its answer and NOERROR',
    resp.dns_rcode_name === 'NOERROR' && (answer === undefined ? resp.dns_answers !== undefined : (resp.dns_answers ?? '').includes(answer)),
    `${question} → ${resp.dns_answers}`);
  const qButton = '[data-testid=details-request] tr:has(> th:text-is("dns_questions")) button[data-term]';
  const term = await page.getAttribute(qButton, 'data-term');
  await page.click(qButton);
  await page.waitForFunction((t) => document.querySelector('[data-testid=filter-input]').value === `dns && dns_rcode == 0 && ${t}`, term, { timeout: 5000 }).catch(() => {});
  const fv = await page.inputValue('[data-testid=filter-input]');
  check('clicking a field value adds a term', fv === `dns && dns_rcode == 0 && ${term}`, fv);
  const narrowed = await waitRows((r, q) => r.protocol === 'DNS' && r.summary.startsWith(`A ${q} →`), question).catch(() => false);
  check('clicking a field value narrows the list', narrowed !== false, term);
  await shot('03-dns-details');

  await applyFilter('dns && dns_rcode == 3', (r) => r.protocol === 'DNS' && /NXDOMAIN$/.test(r.summary));
  await openFirst();
  req = await fields('request');
  resp = await fields('response');
  check('DNS NXDOMAIN details', /\.nx\.test$/.test((req.dns_questions ?? '').trim()) && resp.dns_rcode_name === 'NXDOMAIN', `${req.dns_questions} → ${resp.dns_rcode_name}`);

  // 4. HTTP details: the path asked for and the status nginx answered.
  for (const [status, path] of [[500, /^\/fail$/], [404, /^\/missing-\d$/], [200, /^\/$/]]) {
    await applyFilter(`http && status_code == ${status}`, (r, st) => r.protocol === 'HTTP' && r.summary.endsWith(`→ ${st}`), status);
    await openFirst();
    req = await fields('request');
    resp = await fields('response');
    check(`HTTP ${status} details show request and response`,
      req.method === 'GET' && path.test(req.path ?? '') && resp.status_code === String(status), `${req.method} ${req.path} → ${resp.status_code}`);
  }
  check('HTTP entry offers Copy as cURL', (await page.$('[data-testid=copy-curl]')) !== null);
  check('HTTP response body is shown', (await page.textContent('[data-testid=details-response]')).includes('remora dashboard e2e'));
  await shot('04-http-details');
  await page.keyboard.press('Escape');

  // 5. Redis details: GET session:K returns what the generator SET (user-N, N ≡ K mod 10).
  await applyFilter('redis && redis_type == "GET"', (r) => r.protocol === 'Redis' && r.summary.startsWith('GET session:'));
  await openFirst();
  req = await fields('request');
  resp = await fields('response');
  const key = /^session:(\d+)$/.exec(req.redis_key ?? '');
  const val = /^"user-(\d+)"$/.exec(resp.redis_reply ?? '');
  check('Redis details show request and response',
    req.redis_type === 'GET' && key !== null && val !== null && Number(val[1]) % 10 === Number(key[1]) && resp.redis_error === 'false',
    `${req.redis_command} → ${resp.redis_reply}`);
  await shot('04-redis-details');
  await page.keyboard.press('Escape');

  // The README screenshot: the live view, unfiltered, details of an HTTP entry open.
  await page.fill('[data-testid=filter-input]', '');
  await page.click('[data-testid=filter-apply]');
  await page.waitForFunction(() => new Set([...document.querySelectorAll('[data-entry-id]')].map((r) => r.getAttribute('data-protocol'))).size >= 3, null, { timeout: 15000 });
  await page.click('[data-entry-id][data-protocol=HTTP]:has(.c-summary:text-is("GET / → 200")) >> nth=0');
  await page.waitForSelector('[data-testid=details-response] table.fields');
  await page.waitForTimeout(300);
  await shot('dashboard');
  await page.keyboard.press('Escape');

  // 6. Service map.
  await page.fill('[data-testid=filter-input]', '');
  await page.click('[data-testid=filter-apply]');
  await page.click('[data-testid=nav-map]');
  await page.waitForFunction(() => Number(document.querySelector('[data-testid=service-map]')?.dataset.nodes ?? 0) > 0, null, { timeout: 20000 });
  const nodes = Number(await page.getAttribute('[data-testid=service-map]', 'data-nodes'));
  const edges = Number(await page.getAttribute('[data-testid=service-map]', 'data-edges'));
  check('service map shows nodes and edges', nodes >= 2 && edges >= 1, `${nodes} nodes, ${edges} edges`);
  if (expectEdges.length) {
    const have = (await page.getAttribute('[data-testid=service-map]', 'data-edge-list')).split(' ');
    const missing = expectEdges.filter((e) => !have.includes(e));
    check('service map has the expected edges', missing.length === 0 && nodes >= new Set(expectEdges.flatMap((e) => e.split('/')[0].split('>'))).size,
      missing.length ? `missing ${missing.join(', ')}; have ${have.join(', ')}` : have.join(', '));
  }
  await page.waitForTimeout(500);
  await shot('05-map');

  await page.click('[data-testid=nav-stats]');
  await page.waitForSelector('[data-testid=drops-card]', { timeout: 10000 });
  await page.waitForTimeout(2500);
  await shot('06-stats');
  await page.click('[data-testid=nav-plugins]');
  await page.waitForSelector('[data-testid=plugins-page] table', { timeout: 10000 });
  check('plugins page lists plugins', (await page.$$('[data-testid=plugins-page] tbody tr')).length > 0);
  await shot('07-plugins');

  check('no console errors', errors.length === 0, errors.slice(0, 3).join(' | '));

  if (token) {
    // Another tab opened without the token is told what to do, not that the server is down.
    const bare = await ctx.newPage();
    await bare.goto(base, { waitUntil: 'load' });
    const banner = await bare.waitForSelector('[data-testid=unreachable]', { timeout: 15000 });
    const text = await banner.textContent();
    check('without its token the dashboard asks for one', /requires a token/.test(text) && text.includes('?token='), text);
    await bare.close();
  }
} catch (e) {
  failures.push(String(e));
  console.error(e);
  await shot('failure').catch(() => {});
} finally {
  await ctx.close();
}
if (failures.length) {
  console.error(`${failures.length} check(s) failed`);
  process.exit(1);
}
console.log('all e2e checks passed; screenshots in e2e/artifacts/');
