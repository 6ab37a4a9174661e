import { describe, expect, it } from 'vitest';
import { computeWindow, moveSelection, scrollToReveal } from './virtual';
import { formatViewState, parseViewState } from './urlstate';
import { buildElements } from './servicemap';
import { BoundedList, PauseBuffer } from './entrybuffer';
import { appendRate, percentile } from './derived';
import { pushHistory } from './history';

describe('virtual list window', () => {
  it('renders only visible rows plus overscan', () => {
    expect(computeWindow(100_000, 26, 26 * 5000, 520, 4)).toEqual({ start: 4996, end: 5025, offsetTop: 4996 * 26, totalHeight: 2_600_000 });
  });
  it('clamps at both ends', () => {
    expect(computeWindow(10, 26, -50, 520, 4)).toMatchObject({ start: 0, end: 10 });
    expect(computeWindow(100, 26, 1e9, 260, 2).end).toBe(100);
    expect(computeWindow(0, 26, 0, 500)).toEqual({ start: 0, end: 0, offsetTop: 0, totalHeight: 0 });
  });
  it('scrolls just enough to reveal a row', () => {
    expect(scrollToReveal(0, 26, 260, 520)).toBe(0);
    expect(scrollToReveal(30, 26, 0, 520)).toBe(31 * 26 - 520);
    expect(scrollToReveal(12, 26, 260, 520)).toBe(260);
  });
  it('moves the selection with keys within bounds', () => {
    expect(moveSelection(-1, 'ArrowDown', 5, 3)).toBe(0);
    expect(moveSelection(4, 'ArrowDown', 5, 3)).toBe(4);
    expect(moveSelection(1, 'PageDown', 50, 10)).toBe(11);
    expect(moveSelection(3, 'End', 5, 3)).toBe(4);
    expect(moveSelection(3, 'x', 5, 3)).toBe(3);
  });
});

describe('URL state', () => {
  it('round-trips filter, range, selection and page', () => {
    const s = { page: 'map' as const, filter: 'http && path == "/a b"', from: '2026-01-01T00:00:00Z', to: null, selected: '42' };
    const url = formatViewState(s);
    const [search, hash] = url.split('#');
    expect(parseViewState(search, `#${hash}`)).toEqual(s);
  });
  it('keeps a plain URL for the default view and ignores unknown pages', () => {
    expect(formatViewState({ page: 'stream', filter: '', from: null, to: null, selected: null })).toBe('');
    expect(parseViewState('', '#/nope').page).toBe('stream');
  });
});

describe('service map elements', () => {
  const map = {
    nodes: [{ id: 'a', label: 'a', namespace: null }, { id: 'b', label: 'b', namespace: null }],
    edges: [
      { source: 'a', target: 'b', protocol: 'HTTP', count: 100, errors: 10, ratePerSecond: 2.5, p50Us: 1200, p95Us: 90_000 },
      { source: 'a', target: 'ghost', protocol: 'DNS', count: 1, errors: 0, ratePerSecond: 0.1, p50Us: 10, p95Us: 10 },
    ],
    scanned: 101,
  };
  it('labels edges with protocol, count, rate, error rate and percentiles', () => {
    const els = buildElements(map);
    const edge = els.find((e) => e.group === 'edges')!;
    expect(edge.data).toMatchObject({ source: 'a', target: 'b', severity: 'bad', errorRate: 0.1 });
    expect((edge.data as { label: string }).label).toBe('HTTP ×100 · 2.5/s · 10% err\np50 1.20 ms · p95 90.0 ms');
  });
  it('drops edges to unknown nodes instead of crashing the graph', () => {
    expect(buildElements(map).filter((e) => e.group === 'edges')).toHaveLength(1);
  });
});

describe('bounded buffers', () => {
  it('keeps the newest items first and counts what it trims', () => {
    const l = new BoundedList<number>(3);
    l.push(1, 2, 3, 4, 5);
    expect([l.at(0), l.at(1), l.at(2), l.at(3)]).toEqual([5, 4, 3, undefined]);
    expect(l.trimmed).toBe(2);
    expect(l.toArray()).toEqual([3, 4, 5]);
    expect(l.findIndex((x) => x === 3)).toBe(2);
  });
  it('stays bounded over many pushes', () => {
    const l = new BoundedList<number>(5000);
    for (let i = 0; i < 100_000; i++) l.push(i);
    expect(l.length).toBe(5000);
    expect(l.at(0)).toBe(99_999);
    expect(l.trimmed).toBe(95_000);
  });
  it('rejects a non-positive capacity', () => {
    expect(() => new BoundedList(0)).toThrow(/capacity must be positive, got 0/);
  });
  it('pause buffer counts overflow', () => {
    const p = new PauseBuffer<number>(2);
    [1, 2, 3, 4].forEach((x) => p.add(x));
    expect(p.drain()).toEqual({ items: [1, 2], dropped: 2 });
    expect(p.length).toBe(0);
  });
});

describe('derived statistics', () => {
  it('computes nearest-rank percentiles', () => {
    expect(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 95)).toBe(10);
    expect(percentile([1, 2, 3, 4], 50)).toBe(2);
    expect(percentile([], 50)).toBe(0);
  });
  it('derives a rate and ignores counter resets', () => {
    const p = appendRate([], { t: 0, entries: 10 }, { t: 2000, entries: 30 });
    expect(p).toEqual([{ t: 2000, rate: 10 }]);
    expect(appendRate(p, { t: 2000, entries: 30 }, { t: 3000, entries: 5 })).toBe(p);
  });
  it('history is unique, most recent first, capped', () => {
    expect(pushHistory(['b', 'a'], 'a', 2)).toEqual(['a', 'b']);
    expect(pushHistory(['a'], '  ', 2)).toEqual(['a']);
  });
});
