import { useEffect, useMemo, useRef, useState } from 'react';
import { gql, subscribe } from '../api/client';
import { STATS_QUERY, STATS_SUBSCRIPTION } from '../api/queries';
import type { Entry, Stats } from '../api/types';
import { appendRate, errorRate, slowEndpoints, topTalkers, type RatePoint } from '../lib/derived';
import { formatBytes, formatCount, formatDuration, formatRate } from '../lib/format';
import { ProtocolBadge } from './EntryList';

function Sparkline({ points }: { points: RatePoint[] }) {
  if (points.length < 2) return <p className="muted">Collecting samples (one a second)…</p>;
  const w = 600;
  const h = 120;
  const max = Math.max(1, ...points.map((p) => p.rate));
  const t0 = points[0].t;
  const t1 = points[points.length - 1].t;
  const x = (t: number) => ((t - t0) / Math.max(1, t1 - t0)) * w;
  const y = (r: number) => h - (r / max) * (h - 10);
  const d = points.map((p, i) => `${i ? 'L' : 'M'}${x(p.t).toFixed(1)},${y(p.rate).toFixed(1)}`).join('');
  return (
    <svg className="spark" viewBox={`0 0 ${w} ${h}`} preserveAspectRatio="none" role="img" aria-label="Entries per second">
      <path d={`${d}L${w},${h}L0,${h}Z`} className="spark-fill" />
      <path d={d} className="spark-line" />
      <text x={4} y={12} className="spark-label">
        max {formatRate(max)}/s
      </text>
    </svg>
  );
}

export function StatsPage({ entries, reachable }: { entries: () => Entry[]; reachable: boolean }) {
  const [stats, setStats] = useState<Stats | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [points, setPoints] = useState<RatePoint[]>([]);
  const prev = useRef<{ t: number; entries: number } | null>(null);

  useEffect(() => {
    if (!reachable) return;
    const ctl = new AbortController();
    gql<{ stats: Stats }>(STATS_QUERY, {}, ctl.signal)
      .then((d) => setStats((s) => s ?? d.stats))
      .catch((e: Error) => e.name !== 'AbortError' && setError(e.message));
    const stop = subscribe<{ stats: Stats }>(STATS_SUBSCRIPTION, { intervalMs: 1000 }, {
      next: (d) => {
        const now = { t: Date.now(), entries: d.stats.entries };
        setPoints((p) => appendRate(p, prev.current, now));
        prev.current = now;
        setStats(d.stats);
        setError(null);
      },
      error: (e) => setError(e.message),
    });
    return () => {
      ctl.abort();
      stop();
    };
  }, [reachable]);

  // Recomputed when stats tick (once a second), not on every entry.
  const snapshot = useMemo(() => {
    const all = entries();
    return { n: all.length, talkers: topTalkers(all), slow: slowEndpoints(all), err: errorRate(all) };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [stats, entries]);

  if (!stats) return <div className="page">{error ? <div className="note warn">{error}</div> : <p className="muted">Loading statistics…</p>}</div>;

  const kernelDrops = stats.sources.reduce((a, s) => a + s.kernelDrops + s.interfaceDrops, 0);
  const totalDrops = stats.drops.reduce((a, c) => a + c.value, 0);
  const pluginErrors = stats.shards.reduce((a, s) => a + s.pluginErrors, 0);
  const losing = totalDrops + kernelDrops > 0;
  const protoTotal = Math.max(1, stats.protocols.reduce((a, c) => a + c.value, 0));

  return (
    <div className="page stats" data-testid="stats-page">
      {error && <div className="note warn">{error}</div>}
      <div className={`cards ${losing ? 'losing' : ''}`}>
        <div className="card">
          <div className="k">Packets</div>
          <div className="v">{formatCount(stats.packets)}</div>
          <div className="muted">{formatBytes(stats.bytes)}</div>
        </div>
        <div className="card">
          <div className="k">Entries</div>
          <div className="v">{formatCount(stats.entries)}</div>
          <div className="muted">uptime {formatDuration(stats.uptimeSeconds * 1e6)}</div>
        </div>
        <div className={`card ${totalDrops > 0 ? 'bad' : 'good'}`} data-testid="drops-card">
          <div className="k">Dropped (all stages)</div>
          <div className="v">{formatCount(totalDrops)}</div>
          <div className="muted">{totalDrops > 0 ? 'data is being lost — see reasons below' : 'nothing lost'}</div>
        </div>
        <div className={`card ${kernelDrops > 0 ? 'bad' : 'good'}`}>
          <div className="k">Kernel / interface drops</div>
          <div className="v">{formatCount(kernelDrops)}</div>
          <div className="muted">{kernelDrops > 0 ? 'capture cannot keep up: use a BPF filter or fewer interfaces' : 'none'}</div>
        </div>
        <div className={`card ${pluginErrors > 0 ? 'warn' : 'good'}`}>
          <div className="k">Plugin parse errors</div>
          <div className="v">{formatCount(pluginErrors)}</div>
        </div>
        <div className="card">
          <div className="k">Store</div>
          <div className="v">{formatBytes(stats.store.bytes)}</div>
          <div className="muted">
            of {formatBytes(stats.store.limitBytes)} · {formatCount(stats.store.entries)} entries · {formatCount(stats.store.evictedEntries)} evicted
          </div>
        </div>
      </div>

      <div className="grid2">
        <section>
          <h3>Entries per second</h3>
          <Sparkline points={points} />
        </section>
        <section>
          <h3>Protocols (since start)</h3>
          {stats.protocols.length === 0 && <p className="muted">No entries yet.</p>}
          {stats.protocols.map((p) => (
            <div className="bar-row" key={p.name}>
              <ProtocolBadge protocol={p.name} />
              <div className="bar">
                <div style={{ width: `${(100 * p.value) / protoTotal}%` }} />
              </div>
              <span className="mono">{formatCount(p.value)}</span>
            </div>
          ))}
        </section>
        <section>
          <h3>Drops by reason</h3>
          {stats.drops.length === 0 ? (
            <p className="muted">No drops.</p>
          ) : (
            <table className="tbl">
              <tbody>
                {stats.drops.map((d) => (
                  <tr key={d.name}>
                    <td>{d.name}</td>
                    <td className="num bad-text">{formatCount(d.value)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          <h4>Sources</h4>
          <table className="tbl">
            <thead>
              <tr>
                <th>Source</th>
                <th className="num">Packets</th>
                <th className="num">Bytes</th>
                <th className="num">Kernel drops</th>
                <th className="num">If drops</th>
              </tr>
            </thead>
            <tbody>
              {stats.sources.map((s) => (
                <tr key={s.name}>
                  <td>{s.name}</td>
                  <td className="num">{formatCount(s.packets)}</td>
                  <td className="num">{formatBytes(s.bytes)}</td>
                  <td className={`num ${s.kernelDrops ? 'bad-text' : ''}`}>{formatCount(s.kernelDrops)}</td>
                  <td className={`num ${s.interfaceDrops ? 'bad-text' : ''}`}>{formatCount(s.interfaceDrops)}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <h4>Shards</h4>
          <table className="tbl">
            <thead>
              <tr>
                <th>Shard</th>
                <th className="num">Packets</th>
                <th className="num">Flows</th>
                <th className="num">Entries</th>
                <th className="num">Plugin errors</th>
                <th>Drops</th>
              </tr>
            </thead>
            <tbody>
              {stats.shards.map((s) => (
                <tr key={s.shard}>
                  <td>{s.shard}</td>
                  <td className="num">{formatCount(s.packets)}</td>
                  <td className="num">{formatCount(s.flows)}</td>
                  <td className="num">{formatCount(s.entries)}</td>
                  <td className={`num ${s.pluginErrors ? 'bad-text' : ''}`}>{formatCount(s.pluginErrors)}</td>
                  <td>{s.drops.map((d) => `${d.name}: ${formatCount(d.value)}`).join(', ') || '–'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
        <section>
          <h3>In this browser</h3>
          <p className="muted small">
            Computed from the {formatCount(snapshot.n)} entries held in memory by the stream view (not the whole store).
          </p>
          <p>
            Error rate: <strong>{snapshot.err.total ? ((100 * snapshot.err.errors) / snapshot.err.total).toFixed(1) : '0'}%</strong> ({formatCount(snapshot.err.errors)} of{' '}
            {formatCount(snapshot.err.total)}: HTTP 5xx, DNS rcode ≠ 0, error flags)
          </p>
          <h4>Top talkers</h4>
          <table className="tbl">
            <tbody>
              {snapshot.talkers.map((t) => (
                <tr key={t.pair}>
                  <td className="mono">
                    {t.src} → {t.dst}
                  </td>
                  <td className="num">{formatCount(t.count)}</td>
                  <td className="num">{formatBytes(t.bytes)}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <h4>Slowest endpoints (p95)</h4>
          <table className="tbl">
            <tbody>
              {snapshot.slow.map((s) => (
                <tr key={s.key}>
                  <td className="mono">{s.key}</td>
                  <td className="num">{formatCount(s.count)}×</td>
                  <td className="num">p95 {formatDuration(s.p95Us)}</td>
                  <td className="num">max {formatDuration(s.maxUs)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
      </div>
    </div>
  );
}
