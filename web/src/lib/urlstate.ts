// The shareable part of the view lives in the URL: filter (?q=), page (#/map),
// historical range (?from=&to=), selected entry (?id=).

export type Page = 'stream' | 'map' | 'stats' | 'plugins';
export const PAGES: Page[] = ['stream', 'map', 'stats', 'plugins'];

export interface ViewState {
  page: Page;
  filter: string;
  from: string | null;
  to: string | null;
  selected: string | null;
}

export function parseViewState(search: string, hash: string): ViewState {
  const p = new URLSearchParams(search);
  const h = hash.replace(/^#\/?/, '');
  return {
    page: (PAGES as string[]).includes(h) ? (h as Page) : 'stream',
    filter: p.get('q') ?? '',
    from: p.get('from'),
    to: p.get('to'),
    selected: p.get('id'),
  };
}

/** `?q=...&from=...#/map`; empty values are left out so plain URLs stay plain. */
export function formatViewState(s: ViewState): string {
  const p = new URLSearchParams();
  if (s.filter) p.set('q', s.filter);
  if (s.from) p.set('from', s.from);
  if (s.to) p.set('to', s.to);
  if (s.selected) p.set('id', s.selected);
  const qs = p.toString();
  return `${qs ? `?${qs}` : ''}${s.page === 'stream' ? '' : `#/${s.page}`}`;
}
