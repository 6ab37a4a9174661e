// Tests the built component (not the source): run by
// scripts/build-alert-examples.sh after building, or as
//   node --experimental-wasm-extended-const --test test.mjs [component.wasm]
import { test } from "node:test";
import assert from "node:assert/strict";
import { resolve } from "node:path";
import { loadAlertPlugin, makeBatch } from "./component-harness.mjs";

const wasm = resolve(
  process.env.REMORA_ALERT_WASM ?? new URL("../../../target/alert-examples/js-5xx-burst.wasm", import.meta.url).pathname,
);
const S = 1_000_000; // microseconds per second

/** `n` responses to `dst` with `status`, one every 100 ms from `startS`. */
function responses(n, status, { startS = 0, dst = "10.0.0.2", dstPort = 80, firstId = 1 } = {}) {
  return Array.from({ length: n }, (_, i) => ({
    id: firstId + i,
    timestampUs: startS * S + i * 100_000,
    dst,
    dstPort,
    dstName: `svc-${dst}`,
    request: { method: "GET", path: "/x" },
    response: { status_code: status },
  }));
}

test("describe asks for http entries and a tick", async () => {
  const { alerter } = await loadAlertPlugin(wasm);
  const info = alerter.describe();
  assert.equal(info.name, "http-5xx-burst");
  assert.equal(info.prefilter, "http");
  assert.ok(info.tickMs > 0);
});

test("fires once when 5 of 6 responses in the window are 5xx", async () => {
  const { alerter } = await loadAlertPlugin(wasm);
  const entries = [...responses(1, 200), ...responses(5, 503, { startS: 1, firstId: 10 })];
  const alerts = alerter.onEntries(makeBatch(entries));
  assert.equal(alerts.length, 1);
  const [a] = alerts;
  assert.equal(a.rule, "http-5xx-burst");
  assert.equal(a.severity, "warning");
  assert.deepEqual([...a.entryIds], [10n, 11n, 12n, 13n, 14n]);
  assert.deepEqual(Object.fromEntries(a.labels), {
    dst: "10.0.0.2:80",
    dst_name: "svc-10.0.0.2",
    errors: "5",
    responses: "6",
  });
  assert.match(a.summary, /5 of 6 responses were 5xx \(83%\)/);
});

test("no alert below the ratio or the count", async () => {
  const { alerter } = await loadAlertPlugin(wasm);
  // 5 errors among 15 responses: 33% < 50%.
  const lowRatio = [...responses(10, 200), ...responses(5, 500, { startS: 2, firstId: 100 })];
  assert.deepEqual(alerter.onEntries(makeBatch(lowRatio)), []);
  // 4 errors only, at 100%.
  const few = responses(4, 502, { dst: "10.0.0.3", firstId: 200 });
  assert.deepEqual(alerter.onEntries(makeBatch(few)), []);
});

test("requests without a response and non-5xx errors do not count", async () => {
  const { alerter } = await loadAlertPlugin(wasm);
  const noResponse = responses(6, 0).map((e) => ({ ...e, response: undefined }));
  const clientErrors = responses(6, 404, { startS: 1, firstId: 50 });
  assert.deepEqual(alerter.onEntries(makeBatch([...noResponse, ...clientErrors])), []);
});

test("at most once per window per destination, again after the window", async () => {
  const { alerter } = await loadAlertPlugin(wasm);
  assert.equal(alerter.onEntries(makeBatch(responses(5, 500))).length, 1);
  // Still inside the 10 s quiet period: no repeat however many errors.
  assert.equal(alerter.onEntries(makeBatch(responses(20, 500, { startS: 2, firstId: 10 }))).length, 0);
  // Another destination is independent.
  assert.equal(alerter.onEntries(makeBatch(responses(5, 500, { startS: 3, dstPort: 8080, firstId: 40 }))).length, 1);
  // 15 s later the first destination may fire again.
  const again = alerter.onEntries(makeBatch(responses(5, 500, { startS: 15, firstId: 60 })));
  assert.equal(again.length, 1);
  assert.deepEqual([...again[0].entryIds], [60n, 61n, 62n, 63n, 64n]);
});

test("errors older than the window are forgotten (tick expires state)", async () => {
  const { alerter } = await loadAlertPlugin(wasm);
  assert.deepEqual(alerter.onEntries(makeBatch(responses(4, 500))), []);
  assert.deepEqual(alerter.onTick(BigInt(30 * S)), []);
  // Would be the 5th error if the first four were still in the window.
  assert.deepEqual(alerter.onEntries(makeBatch(responses(1, 500, { startS: 30, firstId: 9 }))), []);
});

test("destination cap evicts the least recently seen and logs it", async () => {
  const { alerter, logs } = await loadAlertPlugin(wasm, { "max-destinations": "2" });
  alerter.onEntries(makeBatch(responses(4, 500, { dst: "10.0.0.10" })));
  alerter.onEntries(makeBatch(responses(1, 200, { dst: "10.0.0.11", firstId: 20 })));
  alerter.onEntries(makeBatch(responses(1, 200, { dst: "10.0.0.12", firstId: 30 })));
  assert.ok(logs.some((l) => l.level === "warn" && /destination cap 2 reached; 1 evicted/.test(l.message)), JSON.stringify(logs));
  // 10.0.0.10 was evicted, so a 5th error starts from scratch.
  assert.deepEqual(alerter.onEntries(makeBatch(responses(1, 500, { dst: "10.0.0.10", startS: 1, firstId: 40 }))), []);
});

test("a bad config value is reported and the default kept", async () => {
  const { alerter, logs } = await loadAlertPlugin(wasm, { "min-5xx": "lots" });
  alerter.describe();
  assert.ok(logs.some((l) => l.level === "warn" && l.message.includes('min-5xx="lots"')), JSON.stringify(logs));
  assert.deepEqual(alerter.onEntries(makeBatch(responses(4, 500))), []);
  assert.equal(alerter.onEntries(makeBatch(responses(1, 500, { startS: 1, firstId: 5 }))).length, 1);
});

test("config overrides the threshold", async () => {
  const { alerter } = await loadAlertPlugin(wasm, { "min-5xx": "2" });
  assert.equal(alerter.onEntries(makeBatch(responses(2, 503))).length, 1);
});
