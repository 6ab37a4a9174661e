// Runs a built alert-plugin component under Node, the way the Remora host
// would call it: jco transpiles the component to JS + core wasm, WASI comes
// from preview2-shim, and `remora:plugin/host` from the test. Used by the
// examples' tests so they exercise the real build output, not the source.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname, basename } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import * as wasi from "@bytecodealliance/preview2-shim";

const here = dirname(fileURLToPath(import.meta.url));
const jco = join(here, "node_modules", ".bin", "jco");

const camel = (s) => s.replace(/-([a-z])/g, (_, c) => c.toUpperCase());

// Transpiling takes seconds; each test still gets a fresh instance.
const transpiledByPath = new Map();

async function transpiled(wasmPath) {
  let t = transpiledByPath.get(wasmPath);
  if (!t) {
    const out = mkdtempSync(join(tmpdir(), "remora-alert-"));
    // Instances compile the core modules lazily, so the files stay until exit.
    process.on("exit", () => rmSync(out, { recursive: true, force: true }));
    execFileSync(jco, ["transpile", wasmPath, "--instantiation", "async", "-q", "-o", out], {
      stdio: ["ignore", "ignore", "inherit"],
    });
    const name = basename(wasmPath, ".wasm");
    const mod = await import(pathToFileURL(join(out, `${name}.js`)).href);
    t = { mod, out };
    transpiledByPath.set(wasmPath, t);
  }
  return t;
}

/**
 * Instantiates the component at `wasmPath`.
 * `config` maps config keys to strings; host logs are pushed onto `logs`.
 * Returns `{ alerter, logs }`.
 */
export async function loadAlertPlugin(wasmPath, config = {}) {
  const { mod, out } = await transpiled(wasmPath);
  const logs = [];
  const host = {
    log: (level, message) => logs.push({ level, message }),
    config: (key) => (Object.hasOwn(config, key) ? config[key] : undefined),
  };
  const imports = new Proxy(
    { "remora:plugin/host": host },
    {
      get(target, key) {
        if (key in target) return target[key];
        const m = /^wasi:([a-z-]+)\/([a-z-]+)$/.exec(key);
        const iface = m && wasi[camel(m[1])]?.[camel(m[2])];
        if (!iface) throw new Error(`component imports ${key}, which the harness does not provide`);
        return iface;
      },
    },
  );
  const instance = await mod.instantiate(
    (file) => WebAssembly.compile(readFileSync(join(out, file))),
    imports,
  );
  return { alerter: instance.alerter, logs };
}

/** Builds an `entry-batch` from plain objects; field names are interned. */
export function makeBatch(entries) {
  const names = [];
  const index = (n) => {
    let i = names.indexOf(n);
    if (i < 0) i = names.push(n) - 1;
    return i;
  };
  const fields = (obj) =>
    obj === undefined
      ? undefined
      : Object.entries(obj).map(([k, v]) => ({
          name: index(k),
          value: typeof v === "number" ? { tag: "int", val: BigInt(v) } : { tag: "str", val: String(v) },
        }));
  return {
    names,
    entries: entries.map((e, i) => ({
      id: BigInt(e.id ?? i + 1),
      timestampUs: BigInt(e.timestampUs ?? 0),
      elapsedUs: 0n,
      protocol: index(e.protocol ?? "http"),
      src: { ip: e.src ?? "10.0.0.1", port: e.srcPort ?? 40000, name: e.srcName ?? e.src ?? "10.0.0.1" },
      dst: { ip: e.dst ?? "10.0.0.2", port: e.dstPort ?? 80, name: e.dstName ?? e.dst ?? "10.0.0.2" },
      request: fields(e.request),
      response: fields(e.response),
    })),
  };
}
