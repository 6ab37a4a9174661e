import { useEffect, useState } from 'react';
import { gql } from '../api/client';
import { PLUGINS_QUERY } from '../api/queries';
import type { Plugin } from '../api/types';
import { formatCount } from '../lib/format';
import { ProtocolBadge } from './EntryList';

export function PluginsPage({ reachable }: { reachable: boolean }) {
  const [plugins, setPlugins] = useState<Plugin[] | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    const ctl = new AbortController();
    const load = () =>
      gql<{ plugins: Plugin[] }>(PLUGINS_QUERY, {}, ctl.signal)
        .then((d) => {
          setPlugins(d.plugins);
          setError(null);
        })
        .catch((e: Error) => e.name !== 'AbortError' && setError(e.message));
    void load();
    const t = setInterval(load, 5000);
    return () => {
      clearInterval(t);
      ctl.abort();
    };
  }, [reachable]);

  return (
    <div className="page" data-testid="plugins-page">
      {error && <div className="note warn">Could not load plugins: {error}</div>}
      {!plugins && !error && <p className="muted">Loading plugins…</p>}
      {plugins && plugins.length === 0 && <p>No plugins are loaded: every flow is counted as raw TCP/UDP. Built-in plugins live in <code>plugins/</code> next to the binary.</p>}
      {plugins && plugins.length > 0 && (
        <table className="tbl plugins">
          <thead>
            <tr>
              <th>Plugin</th>
              <th>Version</th>
              <th>Kind</th>
              <th>Protocols</th>
              <th>State</th>
              <th className="num">Calls</th>
              <th className="num">Errors</th>
              <th className="num">Faults</th>
            </tr>
          </thead>
          <tbody>
            {plugins.map((p) => (
              <tr key={p.name}>
                <td>
                  <strong>{p.name}</strong>
                </td>
                <td className="mono">{p.version}</td>
                <td>{p.kind}</td>
                <td>
                  {p.protocols.map((pr) => (
                    <span key={pr.name} className="proto-cell" title={`flag ${pr.flag}, ${pr.transport}, ports ${pr.ports.join(', ') || 'any (probe)'}`}>
                      <ProtocolBadge protocol={pr.name} /> <span className="muted small">{pr.transport}{pr.ports.length ? ` :${pr.ports.slice(0, 4).join(',')}${pr.ports.length > 4 ? '…' : ''}` : ''}</span>
                    </span>
                  ))}
                </td>
                <td>
                  <span className={`state state-${p.state}`}>{p.state}</span>
                </td>
                <td className="num">{formatCount(p.calls)}</td>
                <td className={`num ${p.errors ? 'warn-text' : ''}`}>{formatCount(p.errors)}</td>
                <td className={`num ${p.faults ? 'bad-text' : ''}`}>{formatCount(p.faults)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
