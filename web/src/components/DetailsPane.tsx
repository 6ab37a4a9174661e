import React, { useEffect, useState } from 'react';
import { gql } from '../api/client';
import { ENTRY_QUERY } from '../api/queries';
import type { Body, Entry, Json, Message } from '../api/types';
import { contentType, renderBody } from '../lib/body';
import { toCurl } from '../lib/curl';
import { formatBytes, formatDuration, statusClass, statusText } from '../lib/format';
import { equalsTerm, fieldTerm, listFieldTerm, mapFieldTerm } from '../lib/term';
import { ProtocolBadge } from './EntryList';

interface Props {
  entry: Entry;
  onAddTerm: (term: string) => void;
  onClose: () => void;
}

type Side = 'request' | 'response';

function scalarText(v: Json): string {
  if (v === null) return 'null';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

function isPairList(v: Json): v is [string, Json][] {
  return Array.isArray(v) && v.length > 0 && v.every((p) => Array.isArray(p) && p.length === 2 && typeof p[0] === 'string');
}

function Clickable({ term, children }: { term: string | null; children: React.ReactNode }) {
  const add = React.useContext(AddTermContext);
  if (!term) return <span className="value">{children}</span>;
  return (
    <button type="button" className="value clickable" title={`Add to filter: && ${term}`} data-term={term} onClick={() => add(term)}>
      {children}
    </button>
  );
}

const AddTermContext = React.createContext<(t: string) => void>(() => {});

function FieldValue({ vars, side, name, value }: { vars: Record<string, Json>; side: Side; name: string; value: Json }) {
  if (isPairList(value)) {
    return (
      <table className="kv">
        <tbody>
          {value.map(([k, v], i) => (
            <tr key={`${k}-${i}`}>
              <th>{k}</th>
              <td>
                <Clickable term={typeof v === 'object' && v !== null ? null : mapFieldTerm(vars, side, name, k, v)}>{scalarText(v)}</Clickable>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    );
  }
  if (Array.isArray(value)) {
    if (value.length === 0) return <span className="muted">(empty)</span>;
    return (
      <ul className="vlist">
        {value.map((v, i) => (
          <li key={i}>
            <Clickable term={typeof v === 'object' && v !== null ? null : listFieldTerm(vars, side, name, v)}>{scalarText(v)}</Clickable>
          </li>
        ))}
      </ul>
    );
  }
  if (value !== null && typeof value === 'object') return <pre className="code">{JSON.stringify(value, null, 2)}</pre>;
  return <Clickable term={fieldTerm(vars, side, name, value)}>{scalarText(value)}</Clickable>;
}

function Fields({ fields, vars, side }: { fields: Json; vars: Record<string, Json>; side: Side }) {
  if (!fields || typeof fields !== 'object' || Array.isArray(fields)) {
    return <pre className="code">{JSON.stringify(fields, null, 2)}</pre>;
  }
  const keys = Object.keys(fields);
  if (keys.length === 0) return <p className="muted">No fields.</p>;
  return (
    <table className="fields">
      <tbody>
        {keys.map((k) => (
          <tr key={k}>
            <th>{k}</th>
            <td>
              <FieldValue vars={vars} side={side} name={k} value={fields[k]} />
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function BodyView({ body, fields }: { body: Body; fields: Json }) {
  const r = renderBody(body, contentType(fields));
  return (
    <div className="body">
      <div className="body-meta muted">
        Body: {formatBytes(body.size)} on the wire, {formatBytes(body.captured)} captured
        {body.decodedFrom ? `, decoded from ${body.decodedFrom}` : ''} · shown as {r.kind}
      </div>
      {body.truncated && (
        <div className="note warn">Truncated: only the first {formatBytes(body.captured)} were kept (the capture's body cap).</div>
      )}
      {r.kind === 'empty' && <p className="muted">Empty body.</p>}
      {r.kind === 'form' && (
        <table className="kv">
          <tbody>
            {r.pairs.map(([k, v], i) => (
              <tr key={i}>
                <th>{k}</th>
                <td>{v}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {(r.kind === 'json' || r.kind === 'xml' || r.kind === 'text' || r.kind === 'hex') && <pre className={`code body-${r.kind}`}>{r.text}</pre>}
    </div>
  );
}

function MessageView({ title, msg, vars, side, loadingBody }: { title: string; msg: Message | null; vars: Record<string, Json>; side: Side; loadingBody: boolean }) {
  return (
    <section className="message" data-testid={`details-${side}`}>
      <h3>
        {title} {msg && <span className="muted summary">{msg.summary}</span>}
      </h3>
      {!msg ? (
        <p className="muted">{side === 'response' ? 'No response was seen (yet) for this request.' : 'No request was seen: only the response was captured.'}</p>
      ) : (
        <>
          <Fields fields={msg.fields} vars={vars} side={side} />
          {msg.body ? <BodyView body={msg.body} fields={msg.fields} /> : loadingBody ? <p className="muted">Loading body…</p> : null}
        </>
      )}
    </section>
  );
}

export function DetailsPane({ entry, onAddTerm, onClose }: Props) {
  const [full, setFull] = useState<Entry | null>(null);
  const [loadErr, setLoadErr] = useState<string | null>(null);
  const [copied, setCopied] = useState<string | null>(null);

  useEffect(() => {
    const ctl = new AbortController();
    setFull(null);
    setLoadErr(null);
    gql<{ entry: Entry | null }>(ENTRY_QUERY, { id: entry.id }, ctl.signal)
      .then((d) => {
        if (d.entry) setFull(d.entry);
        else setLoadErr('This entry has been evicted from the store: bodies are no longer available.');
      })
      .catch((e: Error) => {
        if (e.name !== 'AbortError') setLoadErr(`Could not load bodies: ${e.message}`);
      });
    return () => ctl.abort();
  }, [entry.id]);

  const e = full ?? entry;
  const vars = e.vars ?? {};
  const curl = toCurl(e, e.request?.body?.text ?? null);
  const copyCurl = async () => {
    if (!curl) return;
    try {
      await navigator.clipboard.writeText(curl);
      setCopied('Copied');
    } catch {
      setCopied('Clipboard unavailable: select the command below');
    }
  };
  const sc = statusClass(e);

  return (
    <AddTermContext.Provider value={onAddTerm}>
      <aside className="details" data-testid="details" aria-label="Entry details">
        <header className="details-head">
          <ProtocolBadge protocol={e.protocol} />
          <strong className="details-summary">{e.summary}</strong>
          <span className={`status-${sc}`}>{statusText(e)}</span>
          <span className="spacer" />
          {curl && (
            <button type="button" className="btn" onClick={copyCurl} data-testid="copy-curl">
              Copy as cURL
            </button>
          )}
          <span className="disabled-wrap" title="PCAP export is not available yet: the server does not keep raw packets (has_pcap is false). It will come with the packet store.">
            <button type="button" className="btn" disabled aria-describedby="pcap-why">
              Download PCAP
            </button>
          </span>
          <button type="button" className="btn icon" onClick={onClose} aria-label="Close details (Esc)" title="Close (Esc)">
            ✕
          </button>
        </header>
        <p id="pcap-why" className="muted small">
          Download PCAP: not available yet — raw packets are not stored by this server version.
        </p>
        {copied && (
          <div className="note">
            {copied}
            {copied !== 'Copied' && <pre className="code">{curl}</pre>}
          </div>
        )}
        <div className="meta-grid">
          <div>
            <h4>Timing</h4>
            <dl>
              <dt>Timestamp</dt>
              <dd className="mono">{e.timestamp}</dd>
              <dt>Request</dt>
              <dd className="mono">{e.request?.timestamp ?? '–'}</dd>
              <dt>Response</dt>
              <dd className="mono">{e.response?.timestamp ?? '–'}</dd>
              <dt>Elapsed</dt>
              <dd>{e.complete ? formatDuration(e.elapsedTime) : 'incomplete'}</dd>
            </dl>
          </div>
          <div>
            <h4>Flow</h4>
            <dl>
              <dt>Source</dt>
              <dd className="mono">
                <Clickable term={equalsTerm('src.ip', e.src.ip)}>{e.src.ip}</Clickable>:<Clickable term={equalsTerm('src.port', e.src.port)}>{e.src.port}</Clickable>
                {e.src.name !== e.src.ip && <> ({<Clickable term={equalsTerm('src.name', e.src.name)}>{e.src.name}</Clickable>})</>}
              </dd>
              <dt>Destination</dt>
              <dd className="mono">
                <Clickable term={equalsTerm('dst.ip', e.dst.ip)}>{e.dst.ip}</Clickable>:<Clickable term={equalsTerm('dst.port', e.dst.port)}>{e.dst.port}</Clickable>
                {e.dst.name !== e.dst.ip && <> ({<Clickable term={equalsTerm('dst.name', e.dst.name)}>{e.dst.name}</Clickable>})</>}
              </dd>
              <dt>Transport</dt>
              <dd>
                <Clickable term={e.transport === 'tcp' || e.transport === 'udp' ? e.transport : null}>{e.transport}</Clickable>
              </dd>
              <dt>Flow id</dt>
              <dd className="mono">
                <Clickable term={equalsTerm('flow_id', e.flowId)}>{e.flowId}</Clickable>
              </dd>
              <dt>Entry id</dt>
              <dd className="mono">{e.id}</dd>
              <dt>Sizes</dt>
              <dd>
                {formatBytes(e.requestSize)} request, {formatBytes(e.responseSize)} response
              </dd>
            </dl>
          </div>
        </div>
        {loadErr && <div className="note warn">{loadErr}</div>}
        <div className="messages">
          <MessageView title="Request" msg={e.request} vars={vars} side="request" loadingBody={!full && !loadErr} />
          <MessageView title="Response" msg={e.response} vars={vars} side="response" loadingBody={!full && !loadErr} />
        </div>
      </aside>
    </AddTermContext.Provider>
  );
}
