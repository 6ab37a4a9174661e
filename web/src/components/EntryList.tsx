import React, { useCallback, useEffect, useLayoutEffect, useRef, useState } from 'react';
import { flushSync } from 'react-dom';
import type { Entry } from '../api/types';
import { endpointLabel, formatBytes, formatClock, formatDuration, protocolHue, statusClass, statusText } from '../lib/format';
import { computeWindow, moveSelection, scrollToReveal } from '../lib/virtual';

export const ROW_HEIGHT = 26;

interface Props {
  count: number;
  at: (i: number) => Entry | undefined;
  version: number;
  selectedIndex: number;
  onSelect: (index: number, open: boolean) => void;
  onClose: () => void;
  /** Externally requested scroll position (keeps the view still while rows arrive on top). */
  scrollAdjust: { delta: number; seq: number };
  empty: React.ReactNode;
}

export function ProtocolBadge({ protocol }: { protocol: string }) {
  return (
    <span className="badge" style={{ '--hue': protocolHue(protocol) } as React.CSSProperties}>
      {protocol}
    </span>
  );
}

const Row = React.memo(function Row({ e, index, selected, onClick }: { e: Entry; index: number; selected: boolean; onClick: (i: number) => void }) {
  const sc = statusClass(e);
  return (
    <div
      className={`row${selected ? ' selected' : ''}${index % 2 ? ' odd' : ''}`}
      style={{ height: ROW_HEIGHT }}
      role="row"
      aria-selected={selected}
      data-entry-id={e.id}
      data-protocol={e.protocol}
      onClick={() => onClick(index)}
    >
      <span className="c-time mono">{formatClock(e.timestamp)}</span>
      <span className="c-proto">
        <ProtocolBadge protocol={e.protocol} />
      </span>
      <span className="c-flow mono" title={`${e.src.ip}:${e.src.port} → ${e.dst.ip}:${e.dst.port}`}>
        {endpointLabel(e.src)} <span className="arrow">→</span> {endpointLabel(e.dst)}
      </span>
      <span className="c-summary" title={e.summary}>
        {e.summary}
      </span>
      <span className={`c-status status-${sc}`}>{statusText(e)}</span>
      <span className="c-elapsed mono">{e.elapsedTime > 0 ? formatDuration(e.elapsedTime) : '–'}</span>
      <span className="c-size mono">
        {formatBytes(e.requestSize)} / {formatBytes(e.responseSize)}
      </span>
    </div>
  );
});

export function EntryList({ count, at, version, selectedIndex, onSelect, onClose, scrollAdjust, empty }: Props) {
  const box = useRef<HTMLDivElement>(null);
  // The scroll position rounded down to a row: what the window depends on, so
  // a scroll within a row renders nothing.
  const [rowTop, setRowTop] = useState(0);
  const setScrollTop = useCallback((top: number) => setRowTop(Math.floor(top / ROW_HEIGHT) * ROW_HEIGHT), []);
  const [height, setHeight] = useState(600);

  useLayoutEffect(() => {
    const el = box.current;
    if (!el) return;
    const ro = new ResizeObserver(() => setHeight(el.clientHeight));
    ro.observe(el);
    setHeight(el.clientHeight);
    return () => ro.disconnect();
  }, []);

  useLayoutEffect(() => {
    const el = box.current;
    if (!el || scrollAdjust.delta === 0) return;
    // Rows were added above: if the user has scrolled away from the top, keep what they look at.
    if (el.scrollTop > 0) {
      el.scrollTop += scrollAdjust.delta * ROW_HEIGHT;
      setScrollTop(el.scrollTop);
    }
  }, [scrollAdjust, setScrollTop]);

  const reveal = useCallback(
    (i: number) => {
      const el = box.current;
      if (!el) return;
      const top = scrollToReveal(i, ROW_HEIGHT, el.scrollTop, el.clientHeight - ROW_HEIGHT);
      if (top !== el.scrollTop) el.scrollTop = top;
    },
    [],
  );

  useEffect(() => {
    if (selectedIndex >= 0) reveal(selectedIndex);
  }, [selectedIndex, reveal]);

  const onKeyDown = (ev: React.KeyboardEvent) => {
    if (ev.key === 'Enter') {
      if (selectedIndex >= 0) onSelect(selectedIndex, true);
      ev.preventDefault();
      return;
    }
    if (ev.key === 'Escape') {
      onClose();
      ev.preventDefault();
      return;
    }
    const pageRows = Math.max(1, Math.floor(height / ROW_HEIGHT) - 2);
    const next = moveSelection(selectedIndex, ev.key, count, pageRows);
    if (next !== selectedIndex) {
      onSelect(next, false);
      ev.preventDefault();
    }
  };

  const onRowClick = useCallback((i: number) => onSelect(i, true), [onSelect]);
  // Header row sits inside the scroller, so the body viewport is shorter by one row.
  const w = computeWindow(count, ROW_HEIGHT, rowTop, height - ROW_HEIGHT);
  const rows: React.ReactNode[] = [];
  // Keyed by slot, not entry id: a row scrolled out is reused for the one
  // scrolled in (its text updated in place) instead of unmounted and rebuilt,
  // which is what makes fast scrolling and jumps cheap.
  const slots = Math.max(1, w.end - w.start);
  for (let i = w.start; i < w.end; i++) {
    const e = at(i);
    if (e) rows.push(<Row key={i % slots} e={e} index={i} selected={i === selectedIndex} onClick={onRowClick} />);
  }

  return (
    <div
      className="entry-list"
      ref={box}
      tabIndex={0}
      role="grid"
      aria-rowcount={count}
      aria-label="Traffic entries"
      data-testid="entry-list"
      data-version={version}
      onKeyDown={onKeyDown}
      onScroll={(ev) => {
        const top = ev.currentTarget.scrollTop;
        // Render the rows for the new position before this frame paints; a
        // scroll update is otherwise scheduled as a later task, and the frame
        // shows the old rows (or blank space) at the new position.
        flushSync(() => setScrollTop(top));
      }}
    >
      <div className="row header" role="row" style={{ height: ROW_HEIGHT }}>
        <span className="c-time">Time (UTC)</span>
        <span className="c-proto">Protocol</span>
        <span className="c-flow">Source → Destination</span>
        <span className="c-summary">Summary</span>
        <span className="c-status">Status</span>
        <span className="c-elapsed">Elapsed</span>
        <span className="c-size">Req / Resp</span>
      </div>
      {count === 0 ? (
        <div className="empty-state">{empty}</div>
      ) : (
        <div style={{ height: w.totalHeight, position: 'relative' }}>
          <div style={{ transform: `translateY(${w.offsetTop}px)` }}>{rows}</div>
        </div>
      )}
    </div>
  );
}
