// The bearer token of a server started with --token (required when it listens
// beyond loopback). It arrives once in the address, http://host:8899/?token=…,
// is kept for this tab only (sessionStorage), and leaves the address bar at
// once, so it is neither bookmarked nor passed on with a shared link.

const KEY = 'remora.token';

/** What the server said when it wanted a token; the banner words it. */
export const TOKEN_REQUIRED = 'this server requires a token';
export const TOKEN_REFUSED = 'the server refused this token';

interface Where {
  href: string;
}
interface Nav {
  replaceState(data: unknown, unused: string, url?: string | URL | null): void;
}

/** Moves `?token=` from the address into this tab's storage. */
export function adoptTokenFromUrl(where: Where = location, nav: Nav = history, store: Storage = sessionStorage): void {
  const url = new URL(where.href);
  const t = url.searchParams.get('token');
  if (t === null) return;
  if (t) store.setItem(KEY, t);
  url.searchParams.delete('token');
  nav.replaceState(null, '', url.toString());
}

/** The token to send, if this tab has one. */
export function authToken(store: Storage | undefined = globalThis.sessionStorage): string | null {
  try {
    return store?.getItem(KEY) ?? null;
  } catch {
    return null; // storage disabled: no token
  }
}
