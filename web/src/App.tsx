import { lazy, Suspense, useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { TOKEN_REFUSED, TOKEN_REQUIRED } from './api/auth';
import { gql, GRAPHQL_PATH, onReachability } from './api/client';
import { VARIABLES_QUERY } from './api/queries';
import type { Entry, Variable } from './api/types';
import { FilterBar } from './components/FilterBar';
import { PluginsPage } from './components/PluginsPage';
import { StatsPage } from './components/StatsPage';
import { MAX_ENTRIES, StreamView } from './components/StreamView';
import { BoundedList } from './lib/entrybuffer';
import { appendTerm } from './lib/term';
import { formatViewState, parseViewState, type Page, type ViewState } from './lib/urlstate';

const ServiceMapView = lazy(() => import('./components/ServiceMapView'));

type Theme = 'light' | 'dark' | 'system';
type Reach = 'unknown' | 'up' | 'down';

function useTheme(): [Theme, (t: Theme) => void] {
  const [theme, setTheme] = useState<Theme>(() => (localStorage.getItem('remora.theme') as Theme) || 'system');
  useEffect(() => {
    const root = document.documentElement;
    if (theme === 'system') root.removeAttribute('data-theme');
    else root.setAttribute('data-theme', theme);
    localStorage.setItem('remora.theme', theme);
  }, [theme]);
  return [theme, setTheme];
}

const PAGE_LABELS: Record<Page, string> = { stream: 'Traffic', map: 'Service map', stats: 'Stats', plugins: 'Plugins' };

export function App() {
  const [view, setView] = useState<ViewState>(() => parseViewState(location.search, location.hash));
  const [draft, setDraft] = useState(view.filter);
  const [theme, setTheme] = useTheme();
  const [reach, setReach] = useState<Reach>('unknown');
  const [reachDetail, setReachDetail] = useState('');
  const [variables, setVariables] = useState<Variable[]>([]);
  const store = useMemo(() => new BoundedList<Entry>(MAX_ENTRIES), []);
  const [, setStoreTick] = useState(0);
  const storeTick = useRef(0);

  // URL ← view state (shareable); history entry only when the page or filter changes.
  const lastUrl = useRef(formatViewState(view));
  useEffect(() => {
    const url = formatViewState(view);
    if (url === lastUrl.current) return;
    const prev = parseViewState(lastUrl.current.split('#')[0], lastUrl.current.includes('#') ? `#${lastUrl.current.split('#')[1]}` : '');
    const major = prev.page !== view.page || prev.filter !== view.filter;
    if (major) history.pushState(null, '', url || location.pathname);
    else history.replaceState(null, '', url || location.pathname);
    lastUrl.current = url;
  }, [view]);

  useEffect(() => {
    const onPop = () => {
      const v = parseViewState(location.search, location.hash);
      lastUrl.current = formatViewState(v);
      setView(v);
      setDraft(v.filter);
    };
    window.addEventListener('popstate', onPop);
    window.addEventListener('hashchange', onPop);
    return () => {
      window.removeEventListener('popstate', onPop);
      window.removeEventListener('hashchange', onPop);
    };
  }, []);

  useEffect(
    () =>
      onReachability((ok, detail) => {
        setReach(ok ? 'up' : 'down');
        setReachDetail(detail);
      }),
    [],
  );

  // Probe until the server answers; the probe also loads the filter variables.
  useEffect(() => {
    if (reach === 'up') return;
    let stopped = false;
    const probe = () =>
      gql<{ variables: Variable[] }>(VARIABLES_QUERY)
        .then((d) => !stopped && setVariables(d.variables))
        .catch(() => {});
    void probe();
    const t = setInterval(probe, 3000);
    return () => {
      stopped = true;
      clearInterval(t);
    };
  }, [reach]);

  const setPage = (page: Page) => setView((v) => ({ ...v, page }));
  const applyFilter = useCallback((filter: string) => {
    setDraft(filter);
    setView((v) => ({ ...v, filter, selected: null }));
  }, []);
  const addTerm = useCallback(
    (term: string) => {
      const next = appendTerm(draft, term);
      applyFilter(next);
    },
    [draft, applyFilter],
  );
  const setFilterFromMap = useCallback(
    (f: string) => {
      applyFilter(f);
      setView((v) => ({ ...v, page: 'stream' }));
    },
    [applyFilter],
  );
  const onStoreChange = useCallback(() => {
    storeTick.current++;
  }, []);
  const entries = useCallback(() => store.toArray(), [store]);

  const valuesFor = useCallback(
    (variable: string) => {
      const seen = new Set<string>();
      for (let i = 0; i < Math.min(store.length, 2000) && seen.size < 50; i++) {
        const v = store.at(i)?.vars?.[variable];
        if (typeof v === 'string') seen.add(v);
      }
      return [...seen];
    },
    [store],
  );

  // Subscriptions start only once a query got through, so a stopped server is not hammered over WebSocket.
  const reachable = reach === 'up';
  const nextTheme: Record<Theme, Theme> = { system: 'dark', dark: 'light', light: 'system' };

  return (
    <div className="app">
      <header className="topbar">
        <span className="logo" aria-label="Remora">
          <span className="logo-mark">◗</span> Remora
        </span>
        <nav>
          {(Object.keys(PAGE_LABELS) as Page[]).map((p) => (
            <a
              key={p}
              href={p === 'stream' ? '#' : `#/${p}`}
              className={view.page === p ? 'active' : ''}
              data-testid={`nav-${p}`}
              onClick={(e) => {
                e.preventDefault();
                setPage(p);
                setStoreTick((t) => t + 1);
              }}
            >
              {PAGE_LABELS[p]}
            </a>
          ))}
        </nav>
        <span className="spacer" />
        <span className={`conn conn-${reach}`} data-testid="connection" title={reachDetail}>
          {reach === 'up' ? 'connected' : reach === 'down' ? 'disconnected' : 'connecting…'}
        </span>
        <button type="button" className="btn" onClick={() => setTheme(nextTheme[theme])} title="Theme: system → dark → light" data-testid="theme-toggle">
          Theme: {theme}
        </button>
      </header>
      {reach === 'down' && (reachDetail === TOKEN_REQUIRED || reachDetail === TOKEN_REFUSED) && (
        <div className="banner" role="alert" data-testid="unreachable">
          <strong>The Remora server at {location.origin} requires a token</strong>
          {reachDetail === TOKEN_REFUSED && <span className="muted"> (the one this tab sent was refused)</span>}. Open this
          page as <code>{`${location.origin}/?token=YOUR-TOKEN`}</code>, with the token <code>remora tap</code> was given
          (<code>--token</code> or <code>REMORA_TOKEN</code>).
        </div>
      )}
      {reach === 'down' && reachDetail !== TOKEN_REQUIRED && reachDetail !== TOKEN_REFUSED && (
        <div className="banner" role="alert" data-testid="unreachable">
          <strong>Cannot reach the Remora server</strong> at <code>{location.origin + GRAPHQL_PATH}</code>
          {reachDetail && <span className="muted"> ({reachDetail})</span>}. Is <code>remora</code> running? Start it with e.g.{' '}
          <code>remora tap -i lo</code> and this page reconnects by itself.
        </div>
      )}
      {(view.page === 'stream' || view.page === 'map') && (
        <FilterBar value={draft} onChange={setDraft} onApply={applyFilter} applied={view.filter} variables={variables} valuesFor={valuesFor} />
      )}
      <main>
        {/* Kept mounted on every page so the live stream (and the stats computed from it) keep running. */}
        <div className="page-slot" hidden={view.page !== 'stream'}>
          <StreamView
            filter={view.filter}
            reachable={reachable}
            from={view.from}
            to={view.to}
            onRange={(from, to) => setView((v) => ({ ...v, from, to }))}
            onAddTerm={addTerm}
            selectedId={view.selected}
            onSelectId={(id) => setView((v) => ({ ...v, selected: id }))}
            store={store}
            onStoreChange={onStoreChange}
          />
        </div>
        {view.page === 'map' && (
          <Suspense fallback={<p className="muted page">Loading the service map…</p>}>
            <ServiceMapView filter={view.filter} from={view.from} to={view.to} reachable={reachable} onSetFilter={setFilterFromMap} />
          </Suspense>
        )}
        {view.page === 'stats' && <StatsPage entries={entries} reachable={reachable} />}
        {view.page === 'plugins' && <PluginsPage reachable={reachable} />}
      </main>
    </div>
  );
}
