// The only way the dashboard talks to Remora: POST /graphql for queries and
// graphql-transport-ws on the same path for subscriptions.
import { createClient, type Client } from 'graphql-ws';
import { authToken, TOKEN_REFUSED, TOKEN_REQUIRED } from './auth';

/** The server could not be reached at all (network error, proxy 5xx, not GraphQL). */
export class UnreachableError extends Error {
  constructor(detail: string) {
    super(`cannot reach the Remora server: ${detail}`);
    this.name = 'UnreachableError';
  }
}

/** The server answered with GraphQL errors. */
export class GraphQLError extends Error {
  constructor(messages: string[]) {
    super(messages.join('; '));
    this.name = 'GraphQLError';
  }
}

export const GRAPHQL_PATH = '/graphql';

type Listener = (reachable: boolean, detail: string) => void;
const listeners = new Set<Listener>();
let lastReachable: boolean | null = null;
let lastDetail = '';

/** Connection state shared by queries and the socket, for the "cannot reach" banner. */
export function onReachability(l: Listener): () => void {
  listeners.add(l);
  return () => listeners.delete(l);
}

function report(reachable: boolean, detail = ''): void {
  if (lastReachable === reachable && reachable) return;
  lastReachable = reachable;
  lastDetail = detail;
  for (const l of listeners) l(reachable, detail);
}

export async function gql<T>(query: string, variables: Record<string, unknown> = {}, signal?: AbortSignal): Promise<T> {
  let res: Response;
  try {
    const token = authToken();
    res = await fetch(GRAPHQL_PATH, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json',
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
      body: JSON.stringify({ query, variables }),
      signal,
    });
  } catch (e) {
    if ((e as Error).name === 'AbortError') throw e;
    report(false, String((e as Error).message ?? e));
    throw new UnreachableError((e as Error).message ?? String(e));
  }
  if (res.status === 401) {
    const detail = authToken() ? TOKEN_REFUSED : TOKEN_REQUIRED;
    report(false, detail);
    throw new UnreachableError(detail);
  }
  const type = res.headers.get('content-type') ?? '';
  if (!type.includes('json')) {
    // A dev proxy with no backend answers 5xx HTML/text; a static server 404s.
    const detail = `HTTP ${res.status} from ${GRAPHQL_PATH}`;
    report(false, detail);
    throw new UnreachableError(detail);
  }
  const body = (await res.json()) as { data?: T; errors?: { message: string }[] };
  report(true);
  if (body.errors && body.errors.length > 0) throw new GraphQLError(body.errors.map((e) => e.message));
  if (body.data === undefined) throw new GraphQLError([`HTTP ${res.status} without data`]);
  return body.data;
}

let wsClient: Client | null = null;

function socketUrl(): string {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  // Browsers cannot set headers on a WebSocket upgrade: the token rides in the query.
  const token = authToken();
  return `${proto}//${location.host}${GRAPHQL_PATH}${token ? `?token=${encodeURIComponent(token)}` : ''}`;
}

function socket(): Client {
  if (!wsClient) {
    wsClient = createClient({
      url: socketUrl(),
      lazy: true,
      retryAttempts: Infinity,
      // Back off up to 10 s so a stopped server is not hammered.
      retryWait: async (retries) => {
        await new Promise((r) => setTimeout(r, Math.min(10_000, 500 * 2 ** retries)));
      },
      shouldRetry: () => true,
      on: {
        connected: () => report(true),
        // A refused upgrade closes the socket too; what the last query
        // learnt about the token says more than "closed".
        closed: () =>
          report(false, lastDetail === TOKEN_REQUIRED || lastDetail === TOKEN_REFUSED ? lastDetail : 'WebSocket closed'),
      },
    });
  }
  return wsClient;
}

export interface SubscriptionHandlers<T> {
  next: (data: T) => void;
  error: (err: Error) => void;
}

/** Starts a subscription; returns the function that stops it. */
export function subscribe<T>(query: string, variables: Record<string, unknown>, h: SubscriptionHandlers<T>): () => void {
  return socket().subscribe<T>(
    { query, variables },
    {
      next: (msg) => {
        if (msg.errors && msg.errors.length) h.error(new GraphQLError(msg.errors.map((e) => e.message)));
        else if (msg.data) h.next(msg.data as T);
      },
      error: (e) => h.error(e instanceof Error ? e : new GraphQLError([describeSocketError(e)])),
      complete: () => {},
    },
  );
}

function describeSocketError(e: unknown): string {
  if (Array.isArray(e)) return e.map((x) => (x as { message?: string }).message ?? String(x)).join('; ');
  if (e && typeof e === 'object' && 'reason' in e) return `socket closed: ${(e as CloseEvent).reason || (e as CloseEvent).code}`;
  return String(e);
}
