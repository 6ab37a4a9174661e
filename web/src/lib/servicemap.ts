// Service map (API) → Cytoscape elements with edge labels and styling data.

import type { ServiceMap } from '../api/types';
import { formatDuration, formatRate } from './format';

export interface NodeElement {
  group: 'nodes';
  data: { id: string; label: string; namespace: string | null; calls: number; size: number };
}

export interface EdgeElement {
  group: 'edges';
  data: {
    id: string;
    source: string;
    target: string;
    protocol: string;
    count: number;
    errors: number;
    errorRate: number;
    label: string;
    width: number;
    severity: 'ok' | 'warn' | 'bad';
  };
}

export function edgeLabel(e: ServiceMap['edges'][number]): string {
  const errRate = e.count > 0 ? e.errors / e.count : 0;
  const err = e.errors > 0 ? ` · ${(errRate * 100).toFixed(errRate < 0.1 ? 1 : 0)}% err` : '';
  return `${e.protocol} ×${e.count} · ${formatRate(e.ratePerSecond)}/s${err}\np50 ${formatDuration(e.p50Us)} · p95 ${formatDuration(e.p95Us)}`;
}

export function buildElements(map: ServiceMap): (NodeElement | EdgeElement)[] {
  const calls = new Map<string, number>();
  for (const e of map.edges) {
    calls.set(e.source, (calls.get(e.source) ?? 0) + e.count);
    calls.set(e.target, (calls.get(e.target) ?? 0) + e.count);
  }
  const maxCalls = Math.max(1, ...calls.values());
  const known = new Set(map.nodes.map((n) => n.id));
  const nodes: NodeElement[] = map.nodes.map((n) => {
    const c = calls.get(n.id) ?? 0;
    return {
      group: 'nodes',
      data: { id: n.id, label: n.label, namespace: n.namespace, calls: c, size: 24 + Math.round(28 * Math.sqrt(c / maxCalls)) },
    };
  });
  const maxCount = Math.max(1, ...map.edges.map((e) => e.count));
  const edges: EdgeElement[] = [];
  for (const e of map.edges) {
    // An edge to a node the server did not list would make Cytoscape throw.
    if (!known.has(e.source) || !known.has(e.target)) continue;
    const errorRate = e.count > 0 ? e.errors / e.count : 0;
    edges.push({
      group: 'edges',
      data: {
        id: `${e.source}→${e.target}/${e.protocol}`,
        source: e.source,
        target: e.target,
        protocol: e.protocol,
        count: e.count,
        errors: e.errors,
        errorRate,
        label: edgeLabel(e),
        width: 1 + Math.round(5 * Math.sqrt(e.count / maxCount)),
        severity: errorRate >= 0.05 ? 'bad' : errorRate > 0 ? 'warn' : 'ok',
      },
    });
  }
  return [...nodes, ...edges];
}
