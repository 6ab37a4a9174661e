// Tests the built component (not the source), under Node with the harness
// and npm tooling of ../js-5xx-burst. Run by scripts/build-alert-examples.sh,
// or as: node --experimental-wasm-extended-const --test test.mjs
// (componentize-py output uses extended-const, which Node 20 gates behind
// that flag.)
import { test } from "node:test";
import assert from "node:assert/strict";
import { resolve } from "node:path";
import { loadAlertPlugin, makeBatch } from "../js-5xx-burst/component-harness.mjs";

const wasm = resolve(
  process.env.REMORA_ALERT_WASM ??
    new URL("../../../target/alert-examples/python-metadata.wasm", import.meta.url).pathname,
);

const metadataRead = (id, src, path, extra = {}) => ({
  id,
  src,
  srcName: `pod-${id}`,
  dst: "169.254.169.254",
  request: { method: "GET", path, host: "169.254.169.254" },
  response: { status_code: 200 },
  ...extra,
});

test("describe carries the prefilter and no tick", async () => {
  const { alerter } = await loadAlertPlugin(wasm);
  assert.deepEqual(alerter.describe(), {
    name: "cloud-metadata",
    version: "0.1.0",
    prefilter: 'http && dst.ip == "169.254.169.254" && path.startsWith("/latest/meta-data")',
    tickMs: 0,
  });
});

test("one critical alert per entry, naming source and path", async () => {
  const { alerter, logs } = await loadAlertPlugin(wasm);
  const batch = makeBatch([
    metadataRead(7, "10.1.0.5", "/latest/meta-data/iam/security-credentials/"),
    metadataRead(9, "10.1.0.6", "/latest/meta-data/hostname"),
  ]);
  const alerts = alerter.onEntries(batch);
  assert.equal(alerts.length, 2);
  assert.deepEqual(
    alerts.map((a) => ({ ...a, entryIds: [...a.entryIds] })),
    [
      {
        rule: "cloud-metadata-access",
        severity: "critical",
        summary: "pod-7 (10.1.0.5) read cloud metadata: GET /latest/meta-data/iam/security-credentials/",
        entryIds: [7n],
        labels: [
          ["src", "10.1.0.5"],
          ["path", "/latest/meta-data/iam/security-credentials/"],
        ],
      },
      {
        rule: "cloud-metadata-access",
        severity: "critical",
        summary: "pod-9 (10.1.0.6) read cloud metadata: GET /latest/meta-data/hostname",
        entryIds: [9n],
        labels: [
          ["src", "10.1.0.6"],
          ["path", "/latest/meta-data/hostname"],
        ],
      },
    ],
  );
  assert.deepEqual(logs, [{ level: "debug", message: "2 metadata access(es)" }]);
});

test("field names are looked up in the batch's names table", async () => {
  const { alerter } = await loadAlertPlugin(wasm);
  // Field order differs from the first test, so indices into `names` differ.
  const batch = makeBatch([metadataRead(1, "10.2.0.1", "/latest/meta-data/")]);
  batch.names.reverse();
  const n = batch.names.length - 1;
  for (const e of batch.entries) {
    for (const f of [...e.request, ...e.response]) f.name = n - f.name;
    e.protocol = n - e.protocol;
  }
  const [a] = alerter.onEntries(batch);
  assert.deepEqual(a.labels, [
    ["src", "10.2.0.1"],
    ["path", "/latest/meta-data/"],
  ]);
});

test("missing path, bad name index and long paths do not trap", async () => {
  const { alerter } = await loadAlertPlugin(wasm);
  const batch = makeBatch([
    { id: 1, src: "10.3.0.1", dst: "169.254.169.254", request: { method: "GET" } },
    metadataRead(2, "10.3.0.2", "/latest/meta-data/" + "a".repeat(2000)),
  ]);
  batch.entries[0].request.push({ name: 9999, value: { tag: "str", val: "x" } });
  const [missing, long] = alerter.onEntries(batch);
  assert.deepEqual(missing.labels, [
    ["src", "10.3.0.1"],
    ["path", "?"],
  ]);
  const path = Object.fromEntries(long.labels).path;
  assert.equal(path.length, 513);
  assert.ok(path.endsWith("…"));
});

test("empty batch and tick give no alerts", async () => {
  const { alerter } = await loadAlertPlugin(wasm);
  assert.deepEqual(alerter.onEntries(makeBatch([])), []);
  assert.deepEqual(alerter.onTick(123n), []);
});
