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

try {
  await page.goto(base, { waitUntil: 'load' });
  await page.waitForSelector('[data-testid=connection]:has-text("connected")', { timeout: 15000 });
  check('server reachable', (await page.$('[data-testid=unreachable]')) === null);

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

  // 2. A filter narrows the list to one protocol.
  const before = new Set(await protocols());
  check('stream shows several protocols before filtering', before.size >= 2, [...before].join(','));
  await page.fill('[data-testid=filter-input]', 'dns');
  await page.keyboard.press('Escape');
  await page.click('[data-testid=filter-apply]');
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll('[data-entry-id]')];
    return rows.length > 0 && rows.every((r) => r.getAttribute('data-protocol') === 'DNS');
  }, null, { timeout: 15000 });
  check('typing a filter narrows the list', (await protocols()).every((p) => p === 'DNS'));
  check('filter is in the URL', new URL(page.url()).searchParams.get('q') === 'dns');
  await shot('02-filtered');

  // 3. Details of a DNS entry; clicking a field value appends a term.
  await page.click('[data-entry-id] >> nth=0');
  await page.waitForSelector('[data-testid=details-request] table.fields');
  check('DNS details show request and response',
    (await page.textContent('[data-testid=details-request]')).includes('dns_questions') &&
    (await page.textContent('[data-testid=details-response]')).includes('dns_rcode'));
  const term = await page.getAttribute('[data-testid=details-request] button[data-term] >> nth=0', 'data-term');
  await page.click('[data-testid=details-request] button[data-term] >> nth=0');
  await page.waitForFunction((t) => document.querySelector('[data-testid=filter-input]').value === `dns && ${t}`, term, { timeout: 5000 }).catch(() => {});
  const fv = await page.inputValue('[data-testid=filter-input]');
  check('clicking a field value adds a term', fv === `dns && ${term}`, fv);
  await shot('03-dns-details');

  for (const [flag, reqField, respField] of [['http', 'method', 'status_code'], ['redis', 'redis_type', 'redis_reply']]) {
    await page.fill('[data-testid=filter-input]', flag);
    await page.keyboard.press('Escape');
    await page.click('[data-testid=filter-apply]');
    await page.waitForFunction((p) => {
      const rows = [...document.querySelectorAll('[data-entry-id]')];
      return rows.length > 0 && rows.every((r) => r.getAttribute('data-protocol').toLowerCase() === p);
    }, flag, { timeout: 15000 });
    await page.click('[data-entry-id] >> nth=0');
    await page.waitForSelector('[data-testid=details-response] table.fields');
    const req = await page.textContent('[data-testid=details-request]');
    const resp = await page.textContent('[data-testid=details-response]');
    check(`${flag} details show request and response`, req.includes(reqField) && resp.includes(respField));
    if (flag === 'http') check('HTTP entry offers Copy as cURL', (await page.$('[data-testid=copy-curl]')) !== null);
    await shot(`04-${flag}-details`);
    await page.keyboard.press('Escape');
  }

  // 4. Service map.
  await page.fill('[data-testid=filter-input]', '');
  await page.click('[data-testid=filter-apply]');
  await page.click('[data-testid=nav-map]');
  await page.waitForFunction(() => Number(document.querySelector('[data-testid=service-map]')?.dataset.nodes ?? 0) > 0, null, { timeout: 20000 });
  const nodes = Number(await page.getAttribute('[data-testid=service-map]', 'data-nodes'));
  const edges = Number(await page.getAttribute('[data-testid=service-map]', 'data-edges'));
  check('service map shows nodes and edges', nodes >= 2 && edges >= 1, `${nodes} nodes, ${edges} edges`);
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
