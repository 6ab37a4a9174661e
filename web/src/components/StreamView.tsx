import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { gql, subscribe } from '../api/client';
import { ENTRIES_QUERY, ENTRIES_SUBSCRIPTION } from '../api/queries';
import type { Entry, EntryPage } from '../api/types';
import { BoundedList, PauseBuffer } from '../lib/entrybuffer';
import { formatCount, fromLocalInput, toLocalInput } from '../lib/format';
import { DetailsPane } from './DetailsPane';
import { EntryList } from './EntryList';

/** Entries kept in memory; older ones are trimmed and counted. */
export const MAX_ENTRIES = 100_000;
/** Entries held while paused; the rest are counted as skipped. */
export const MAX_PAUSED = 20_000;
const BACKFILL = 500;
const PAGE = 500;

interface Props {
  filter: string;
  reachable: boolean;
  from: string | null;
  to: string | null;
  onRange: (from: string | null, to: string | null) => void;
  onAddTerm: (term: string) => void;
  selectedId: string | null;
  onSelectId: (id: string | null) => void;
  /** Shared so the stats page and autocompletion see the same entries. */
  store: BoundedList<Entry>;
  onStoreChange: () => void;
}

declare global {
  interface Window {
    /** Bench/dev-only: push synthetic entries as if they came from the subscription. */
    __remoraInject?: (entries: Entry[]) => void;
  }
}

export function StreamView({ filter, reachable, from, to, onRange, onAddTerm, selectedId, onSelectId, store, onStoreChange }: Props) {
  const historical = from !== null || to !== null;
  const [version, setVersion] = useState(0);
  const [paused, setPaused] = useState(false);
  const pausedRef = useRef(false);
  const pauseBuf = useRef(new PauseBuffer<Entry>(MAX_PAUSED));
  const [pauseInfo, setPauseInfo] = useState({ held: 0, dropped: 0 });
  const [skippedWhilePaused, setSkipped] = useState(0);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const [selectedIndex, setSelectedIndex] = useState(-1);
  const [detailsOpen, setDetailsOpen] = useState(selectedId !== null);
  const [scrollAdjust, setScrollAdjust] = useState({ delta: 0, seq: 0 });
  const [history, setHistory] = useState<{ next: string | null; scanned: number }>({ next: null, scanned: 0 });
  const pending = useRef<Entry[]>([]);
  const frame = useRef<number | null>(null);

  const bump = useCallback(() => {
    setVersion((v) => v + 1);
    onStoreChange();
  }, [onStoreChange]);

  const flush = useCallback(() => {
    frame.current = null;
    const batch = pending.current;
    if (batch.length === 0) return;
    pending.current = [];
    store.push(...batch);
    setScrollAdjust((s) => ({ delta: batch.length, seq: s.seq + 1 }));
    // Selection follows its entry as rows are added above it.
    setSelectedIndex((i) => (i >= 0 ? Math.min(store.length - 1, i + batch.length) : i));
    bump();
  }, [store, bump]);

  const receive = useCallback(
    (entries: Entry[]) => {
      if (pausedRef.current) {
        for (const e of entries) pauseBuf.current.add(e);
        setPauseInfo({ held: pauseBuf.current.length, dropped: pauseBuf.current.dropped });
        return;
      }
      pending.current.push(...entries);
      // One render per animation frame however fast entries arrive.
      if (frame.current === null) frame.current = requestAnimationFrame(flush);
    },
    [flush],
  );

  useEffect(() => {
    if (import.meta.env.DEV || import.meta.env.MODE === 'bench') {
      window.__remoraInject = receive;
      return () => {
        delete window.__remoraInject;
      };
    }
  }, [receive]);

  // Live mode: subscribe first, then backfill recent stored entries below what arrives live.
  useEffect(() => {
    if (historical) return;
    if (!reachable) {
      setLoading(false);
      return;
    }
    store.clear();
    pending.current = [];
    setSelectedIndex(-1);
    setError(null);
    setLoading(true);
    bump();
    const seen = new Set<string>();
    let backfilled = false;
    const early: Entry[] = [];
    const stop = subscribe<{ entries: Entry }>(ENTRIES_SUBSCRIPTION, { filter: filter || null }, {
      next: (d) => {
        if (!backfilled) early.push(d.entries);
        else receive([d.entries]);
      },
      error: (e) => setError(e.message),
    });
    const ctl = new AbortController();
    gql<{ entries: EntryPage }>(ENTRIES_QUERY, { filter: filter || null, limit: BACKFILL, order: 'NEWEST_FIRST' }, ctl.signal)
      .then((d) => {
        const older = [...d.entries.entries].reverse();
        for (const e of older) seen.add(e.id);
        store.push(...older);
        bump();
      })
      .catch((e: Error) => {
        if (e.name !== 'AbortError') setError(e.message);
      })
      .finally(() => {
        if (ctl.signal.aborted) return;
        backfilled = true;
        setLoading(false);
        receive(early.filter((e) => !seen.has(e.id)));
      });
    return () => {
      stop();
      ctl.abort();
      if (frame.current !== null) cancelAnimationFrame(frame.current);
      frame.current = null;
    };
    // `reachable` re-runs the subscription once the server comes back.
  }, [filter, historical, reachable, store, bump, receive]);

  // Historical mode: page through stored entries in [from, to).
  const loadPage = useCallback(
    (after: string | null, signal?: AbortSignal) => {
      setLoading(true);
      return gql<{ entries: EntryPage }>(ENTRIES_QUERY, { filter: filter || null, from, to, after, limit: PAGE, order: 'NEWEST_FIRST' }, signal)
        .then((d) => {
          // The list is newest-first and appends go on top, so older pages go underneath.
          const all = [...store.toArray()];
          const page = [...d.entries.entries].reverse();
          store.clear();
          store.push(...page, ...all);
          setHistory((h) => ({ next: d.entries.next, scanned: h.scanned + d.entries.scanned }));
          setError(null);
          bump();
        })
        .catch((e: Error) => {
          if (e.name !== 'AbortError') setError(e.message);
        })
        .finally(() => setLoading(false));
    },
    [filter, from, to, store, bump],
  );

  useEffect(() => {
    if (!historical) return;
    store.clear();
    setSelectedIndex(-1);
    setHistory({ next: null, scanned: 0 });
    bump();
    const ctl = new AbortController();
    void loadPage(null, ctl.signal);
    return () => ctl.abort();
  }, [historical, loadPage, store, bump]);

  const togglePause = () => {
    if (pausedRef.current) {
      pausedRef.current = false;
      setPaused(false);
      const { items, dropped } = pauseBuf.current.drain();
      setSkipped((s) => s + dropped);
      setPauseInfo({ held: 0, dropped: 0 });
      receive(items);
    } else {
      pausedRef.current = true;
      setPaused(true);
    }
  };

  useEffect(() => {
    if (selectedId === null) {
      setDetailsOpen(false);
      return;
    }
    const i = store.findIndex((e) => e.id === selectedId);
    if (i >= 0) setSelectedIndex(i);
    // Only when the id changes from outside (URL), not on every new row.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [selectedId]);

  const onSelect = useCallback(
    (i: number, open: boolean) => {
      setSelectedIndex(i);
      const e = store.at(i);
      if (open || detailsOpen) {
        setDetailsOpen(true);
        onSelectId(e?.id ?? null);
      }
    },
    [store, detailsOpen, onSelectId],
  );

  const closeDetails = useCallback(() => {
    setDetailsOpen(false);
    onSelectId(null);
  }, [onSelectId]);

  const selected = detailsOpen && selectedIndex >= 0 ? store.at(selectedIndex) : undefined;
  const at = useCallback((i: number) => store.at(i), [store]);

  const empty = useMemo(() => {
    if (!reachable) return <p>Waiting for the Remora server…</p>;
    if (error) return <p className="err">The server rejected the request: {error}</p>;
    if (loading) return <p className="muted">Loading entries…</p>;
    if (historical) return <p>No stored entries match this filter in the chosen time range.</p>;
    if (filter)
      return (
        <p>
          No entries match <code>{filter}</code> yet. New matching traffic will appear here; clear the filter to see everything.
        </p>
      );
    return (
      <div>
        <p>
          <strong>No traffic yet</strong> — is <code>remora tap</code> capturing the right interface?
        </p>
        <p className="muted">
          Try <code>remora tap -i lo</code> for local traffic, then make a request (e.g. <code>curl http://localhost:8080/</code>).
        </p>
      </div>
    );
  }, [reachable, error, loading, historical, filter]);

  const [fromInput, setFromInput] = useState(from ? toLocalInput(new Date(from)) : '');
  const [toInput, setToInput] = useState(to ? toLocalInput(new Date(to)) : '');

  return (
    <div className={`stream ${selected ? 'with-details' : ''}`}>
      <div className="toolbar">
        <div className="seg" role="group" aria-label="Mode">
          <button type="button" className={`btn ${!historical ? 'active' : ''}`} onClick={() => onRange(null, null)} data-testid="mode-live">
            Live
          </button>
          <button
            type="button"
            className={`btn ${historical ? 'active' : ''}`}
            onClick={() => {
              const now = new Date();
              const f = fromInput || toLocalInput(new Date(now.getTime() - 15 * 60_000));
              setFromInput(f);
              onRange(fromLocalInput(f), fromLocalInput(toInput));
            }}
          >
            History
          </button>
        </div>
        {!historical ? (
          <button type="button" className={`btn ${paused ? 'primary' : ''}`} onClick={togglePause} data-testid="pause" title="Pause the live stream (new entries are held)">
            {paused ? `Resume (${formatCount(pauseInfo.held)} held${pauseInfo.dropped ? `, ${formatCount(pauseInfo.dropped)} over the ${formatCount(MAX_PAUSED)} cap` : ''})` : 'Pause'}
          </button>
        ) : (
          <form
            className="range"
            onSubmit={(ev) => {
              ev.preventDefault();
              onRange(fromLocalInput(fromInput), fromLocalInput(toInput));
            }}
          >
            <label>
              From (UTC) <input type="datetime-local" value={fromInput} onChange={(e) => setFromInput(e.target.value)} />
            </label>
            <label>
              To <input type="datetime-local" value={toInput} onChange={(e) => setToInput(e.target.value)} />
            </label>
            <button className="btn" type="submit">
              Show
            </button>
            <button className="btn" type="button" disabled={!history.next || loading} onClick={() => void loadPage(history.next)}>
              {history.next ? 'Load older' : 'No more'}
            </button>
          </form>
        )}
        <span className="spacer" />
        <span className="muted counts" data-testid="entry-count">
          {formatCount(store.length)} entries
          {store.trimmed > 0 && ` · ${formatCount(store.trimmed)} oldest dropped from view (cap ${formatCount(MAX_ENTRIES)})`}
          {skippedWhilePaused > 0 && ` · ${formatCount(skippedWhilePaused)} skipped while paused`}
          {historical && ` · scanned ${formatCount(history.scanned)}`}
        </span>
      </div>
      {error && store.length > 0 && <div className="note warn">{error}</div>}
      <div className="panes">
        <EntryList
          count={store.length}
          at={at}
          version={version}
          selectedIndex={selectedIndex}
          onSelect={onSelect}
          onClose={closeDetails}
          scrollAdjust={scrollAdjust}
          empty={empty}
        />
        {selected && <DetailsPane entry={selected} onAddTerm={onAddTerm} onClose={closeDetails} />}
      </div>
    </div>
  );
}
