// TypeScript mirror of host/api/schema.graphql (the contract). Int64 arrives as
// a JSON number; times are RFC 3339 strings; durations are microseconds.

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

export interface Endpoint {
  ip: string;
  port: number;
  name: string;
}

export interface Body {
  size: number;
  captured: number;
  truncated: boolean;
  decodedFrom: string | null;
  text: string | null;
  base64: string | null;
}

export interface Message {
  timestamp: string;
  fields: Json;
  summary: string;
  body?: Body | null;
}

export interface Entry {
  id: string;
  timestamp: string;
  elapsedTime: number;
  protocol: string;
  flag: string;
  transport: string;
  flowId: number;
  src: Endpoint;
  dst: Endpoint;
  complete: boolean;
  summary: string;
  status: number | null;
  requestSize: number;
  responseSize: number;
  request: Message | null;
  response: Message | null;
  vars: Record<string, Json>;
}

export interface EntryPage {
  entries: Entry[];
  next: string | null;
  scanned: number;
}

export interface Counter {
  name: string;
  value: number;
}

export interface SourceStats {
  name: string;
  packets: number;
  bytes: number;
  kernelDrops: number;
  interfaceDrops: number;
}

export interface ShardStats {
  shard: number;
  packets: number;
  bytes: number;
  flows: number;
  entries: number;
  pluginErrors: number;
  drops: Counter[];
}

export interface StoreStats {
  bytes: number;
  limitBytes: number;
  entries: number;
  evictedEntries: number;
  oldestId: string | null;
  newestId: string | null;
}

export interface Stats {
  uptimeSeconds: number;
  packets: number;
  bytes: number;
  entries: number;
  drops: Counter[];
  sources: SourceStats[];
  shards: ShardStats[];
  store: StoreStats;
  protocols: Counter[];
}

export interface PluginProtocol {
  name: string;
  flag: string;
  transport: string;
  ports: number[];
}

export interface Plugin {
  name: string;
  version: string;
  kind: string;
  protocols: PluginProtocol[];
  state: string;
  calls: number;
  errors: number;
  faults: number;
}

export interface FilterError {
  message: string;
  start: number;
  end: number;
}

export interface FilterCheck {
  ok: boolean;
  error: FilterError | null;
}

export interface Variable {
  name: string;
  type: string;
  protocol: string | null;
  doc: string;
}

export type GroupBy = 'NAME' | 'IP' | 'NAMESPACE';

export interface ServiceNode {
  id: string;
  label: string;
  namespace: string | null;
}

export interface ServiceEdge {
  source: string;
  target: string;
  protocol: string;
  count: number;
  errors: number;
  ratePerSecond: number;
  p50Us: number;
  p95Us: number;
}

export interface ServiceMap {
  nodes: ServiceNode[];
  edges: ServiceEdge[];
  scanned: number;
}
