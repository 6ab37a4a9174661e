// Lazy-loaded: Cytoscape is the largest dependency and only this page needs it.
import cytoscape from 'cytoscape';
import { useEffect, useRef, useState } from 'react';
import { gql } from '../api/client';
import { SERVICE_MAP_QUERY } from '../api/queries';
import type { GroupBy, ServiceMap } from '../api/types';
import { formatCount } from '../lib/format';
import { buildElements } from '../lib/servicemap';
import { edgeFilter, nodeFilter } from '../lib/term';

interface Props {
  filter: string;
  from: string | null;
  to: string | null;
  reachable: boolean;
  onSetFilter: (f: string) => void;
}

function cssVar(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || '#888';
}

export default function ServiceMapView({ filter, from, to, reachable, onSetFilter }: Props) {
  const box = useRef<HTMLDivElement>(null);
  const [groupBy, setGroupBy] = useState<GroupBy>('NAME');
  const [map, setMap] = useState<ServiceMap | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [tick, setTick] = useState(0);

  useEffect(() => {
    const ctl = new AbortController();
    setError(null);
    gql<{ serviceMap: ServiceMap }>(SERVICE_MAP_QUERY, { filter: filter || null, from, to, groupBy }, ctl.signal)
      .then((d) => setMap(d.serviceMap))
      .catch((e: Error) => {
        if (e.name !== 'AbortError') setError(e.message);
      });
    return () => ctl.abort();
  }, [filter, from, to, groupBy, tick, reachable]);

  useEffect(() => {
    if (!box.current || !map || map.nodes.length === 0) return;
    const fg = cssVar('--fg');
    const cy = cytoscape({
      container: box.current,
      elements: buildElements(map),
      wheelSensitivity: 0.3,
      // Fitting a graph of one or two nodes would otherwise blow them up to fill the page.
      maxZoom: 1.6,
      minZoom: 0.1,
      style: [
        {
          selector: 'node',
          style: {
            label: 'data(label)',
            width: 'data(size)',
            height: 'data(size)',
            'background-color': cssVar('--accent'),
            color: fg,
            'font-size': 11,
            'text-valign': 'bottom',
            'text-margin-y': 4,
            'text-outline-color': cssVar('--bg'),
            'text-outline-width': 2,
          },
        },
        {
          selector: 'edge',
          style: {
            label: 'data(label)',
            width: 'data(width)',
            'curve-style': 'bezier',
            'target-arrow-shape': 'triangle',
            'line-color': cssVar('--edge-ok'),
            'target-arrow-color': cssVar('--edge-ok'),
            color: fg,
            'font-size': 9,
            'text-wrap': 'wrap',
            'text-rotation': 'autorotate',
            'text-background-color': cssVar('--bg'),
            'text-background-opacity': 0.85,
            'text-background-padding': '2px',
          },
        },
        { selector: 'edge[severity = "warn"]', style: { 'line-color': cssVar('--warn'), 'target-arrow-color': cssVar('--warn') } },
        { selector: 'edge[severity = "bad"]', style: { 'line-color': cssVar('--bad'), 'target-arrow-color': cssVar('--bad') } },
        { selector: ':selected', style: { 'overlay-opacity': 0.2, 'overlay-color': cssVar('--accent') } },
      ],
      // Small maps: busiest node in the middle, the rest around it (cose packs a
      // handful of nodes on top of each other); cose keeps 100 nodes readable.
      layout:
        map.nodes.length <= 12
          ? { name: 'concentric', animate: false, concentric: (n) => n.degree(false), levelWidth: () => 1, minNodeSpacing: 140, padding: 40 }
          : { name: 'cose', animate: false, nodeRepulsion: () => 12000, idealEdgeLength: () => 140, padding: 30 },
    });
    cy.on('tap', 'node', (ev) => onSetFilter(nodeFilter(ev.target.id(), groupBy)));
    cy.on('tap', 'edge', (ev) => {
      const d = ev.target.data();
      onSetFilter(edgeFilter(d.source, d.target, String(d.protocol).toLowerCase(), groupBy));
    });
    // For tests and debugging: the graph as rendered.
    box.current.dataset.nodes = String(cy.nodes().length);
    box.current.dataset.edges = String(cy.edges().length);
    box.current.dataset.edgeList = cy
      .edges()
      .map((e) => `${e.data('source')}>${e.data('target')}/${e.data('protocol')}`)
      .sort()
      .join(' ');
    return () => cy.destroy();
  }, [map, groupBy, onSetFilter]);

  return (
    <div className="map-page">
      <div className="toolbar">
        <label>
          Group by{' '}
          <select value={groupBy} onChange={(e) => setGroupBy(e.target.value as GroupBy)}>
            <option value="NAME">name</option>
            <option value="IP">IP</option>
            <option value="NAMESPACE">namespace</option>
          </select>
        </label>
        <button type="button" className="btn" onClick={() => setTick((t) => t + 1)}>
          Refresh
        </button>
        <span className="spacer" />
        {map && (
          <span className="muted" data-testid="map-counts">
            {map.nodes.length} nodes · {map.edges.length} edges · scanned {formatCount(map.scanned)} entries
          </span>
        )}
      </div>
      <p className="muted small">Click a node to show its traffic, or an edge for the calls between that pair; the filter bar above applies to the map too.</p>
      {error && <div className="note warn">Could not load the service map: {error}</div>}
      {map && map.nodes.length === 0 && <div className="empty-state">No calls in the stored entries{filter ? ' matching this filter' : ''} yet.</div>}
      <div className="cy" ref={box} data-testid="service-map" style={{ display: map && map.nodes.length ? 'block' : 'none' }} />
    </div>
  );
}
