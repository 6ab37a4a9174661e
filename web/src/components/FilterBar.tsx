import React, { useEffect, useMemo, useRef, useState } from 'react';
import { gql } from '../api/client';
import { CHECK_FILTER_QUERY } from '../api/queries';
import type { FilterCheck, FilterError, Variable } from '../api/types';
import { pathAt, tokenize, type Token } from '../lib/cel';
import { loadHistory, pushHistory, saveHistory } from '../lib/history';

interface Props {
  value: string;
  onChange: (v: string) => void;
  /** Called with a filter the server accepted (or that could not be checked). */
  onApply: (v: string) => void;
  applied: string;
  variables: Variable[];
  /** Values seen in memory per variable, for value completion. */
  valuesFor: (variable: string) => string[];
}

interface Suggestion {
  label: string;
  insert: string;
  detail: string;
  start: number;
  end: number;
}

function Highlighted({ text, error }: { text: string; error: FilterError | null }) {
  const tokens = useMemo(() => tokenize(text), [text]);
  const parts: React.ReactNode[] = [];
  const errStart = error ? Math.min(error.start, Math.max(0, text.length - 1)) : -1;
  const errEnd = error ? Math.max(error.end, errStart + 1) : -1;
  tokens.forEach((t: Token, i) => {
    // Split a token where the error span begins or ends so only the span is underlined.
    const cuts = [t.start, ...[errStart, errEnd].filter((c) => c > t.start && c < t.end), t.end];
    for (let k = 0; k + 1 < cuts.length; k++) {
      const [a, b] = [cuts[k], cuts[k + 1]];
      const inErr = error !== null && a >= errStart && b <= errEnd;
      parts.push(
        <span key={`${i}-${k}`} className={`tok-${t.kind}${inErr ? ' tok-err-span' : ''}`}>
          {text.slice(a, b)}
        </span>,
      );
    }
  });
  if (error && errStart >= text.length - 1 && text.length > 0 && error.start >= text.length) {
    parts.push(<span key="eof" className="tok-err-span tok-eof"> </span>);
  }
  return <>{parts}</>;
}

const FLAGS_HINT = 'http dns redis grpc kafka amqp mysql postgresql mongodb mqtt tcp udp';

export function FilterBar({ value, onChange, onApply, applied, variables, valuesFor }: Props) {
  const [check, setCheck] = useState<FilterCheck | null>(null);
  const [checkErr, setCheckErr] = useState<string | null>(null);
  const [caret, setCaret] = useState(0);
  const [open, setOpen] = useState(false);
  const [active, setActive] = useState(0);
  const [history, setHistory] = useState<string[]>(() => loadHistory());
  const [showHistory, setShowHistory] = useState(false);
  const input = useRef<HTMLInputElement>(null);
  const mirror = useRef<HTMLDivElement>(null);

  useEffect(() => {
    if (value.trim() === '') {
      setCheck({ ok: true, error: null });
      setCheckErr(null);
      return;
    }
    const ctl = new AbortController();
    const t = setTimeout(() => {
      gql<{ checkFilter: FilterCheck }>(CHECK_FILTER_QUERY, { filter: value }, ctl.signal)
        .then((d) => {
          setCheck(d.checkFilter);
          setCheckErr(null);
        })
        .catch((e: Error) => {
          if (e.name !== 'AbortError') {
            setCheck(null);
            setCheckErr(e.message);
          }
        });
    }, 200);
    return () => {
      clearTimeout(t);
      ctl.abort();
    };
  }, [value]);

  const suggestions = useMemo<Suggestion[]>(() => {
    if (!open) return [];
    const before = value.slice(0, caret);
    // Value completion after `name ==` / `name !=`.
    const cmp = /([A-Za-z_][\w.]*)\s*(==|!=)\s*("?[^"]*)$/.exec(before);
    if (cmp) {
      const typed = cmp[3].replace(/^"/, '');
      const start = caret - cmp[3].length;
      return valuesFor(cmp[1])
        .filter((v) => v.toLowerCase().includes(typed.toLowerCase()))
        .slice(0, 12)
        .map((v) => ({ label: v, insert: JSON.stringify(v), detail: 'seen value', start, end: caret }));
    }
    const { prefix, start } = pathAt(value, caret);
    if (!prefix) return [];
    const p = prefix.toLowerCase();
    const ranked = variables
      .filter((v) => v.name.toLowerCase().includes(p) && v.name !== prefix)
      .sort((a, b) => Number(!a.name.toLowerCase().startsWith(p)) - Number(!b.name.toLowerCase().startsWith(p)) || a.name.length - b.name.length);
    return ranked.slice(0, 12).map((v) => ({
      label: v.name,
      insert: v.name,
      detail: `${v.type}${v.protocol ? ` · ${v.protocol}` : ''}${v.doc ? ` — ${v.doc}` : ''}`,
      start,
      end: caret,
    }));
  }, [open, value, caret, variables, valuesFor]);

  const accept = (s: Suggestion) => {
    const next = value.slice(0, s.start) + s.insert + value.slice(s.end);
    onChange(next);
    const pos = s.start + s.insert.length;
    requestAnimationFrame(() => {
      input.current?.setSelectionRange(pos, pos);
      setCaret(pos);
    });
    setActive(0);
  };

  const apply = (v: string) => {
    setOpen(false);
    setShowHistory(false);
    if (check && !check.ok && v === value) return; // Inline error already explains why.
    const h = pushHistory(history, v);
    setHistory(h);
    saveHistory(h);
    onApply(v);
  };

  const onKeyDown = (e: React.KeyboardEvent<HTMLInputElement>) => {
    if (suggestions.length > 0) {
      if (e.key === 'ArrowDown') {
        setActive((a) => (a + 1) % suggestions.length);
        e.preventDefault();
        return;
      }
      if (e.key === 'ArrowUp') {
        setActive((a) => (a - 1 + suggestions.length) % suggestions.length);
        e.preventDefault();
        return;
      }
      if (e.key === 'Tab' || (e.key === 'Enter' && open && active >= 0 && suggestions[active] && !e.ctrlKey)) {
        if (e.key === 'Tab' || suggestions[active]) {
          accept(suggestions[Math.min(active, suggestions.length - 1)]);
          e.preventDefault();
          return;
        }
      }
    }
    if (e.key === 'Escape') {
      setOpen(false);
      setShowHistory(false);
      return;
    }
    if (e.key === 'Enter') {
      e.preventDefault();
      apply(value);
    }
  };

  const error = check && !check.ok ? check.error : null;
  const dirty = value.trim() !== applied.trim();
  const syncScroll = () => {
    if (mirror.current && input.current) mirror.current.scrollLeft = input.current.scrollLeft;
  };

  return (
    <div className="filterbar">
      <div className={`filter-input ${error ? 'has-error' : ''}`}>
        <div className="filter-mirror" ref={mirror} aria-hidden="true">
          <Highlighted text={value} error={error} />
        </div>
        <input
          ref={input}
          aria-label="Filter (CEL)"
          data-testid="filter-input"
          spellCheck={false}
          autoComplete="off"
          placeholder={`CEL filter, e.g. http && status_code >= 500   (flags: ${FLAGS_HINT})`}
          value={value}
          onChange={(e) => {
            onChange(e.target.value);
            setCaret(e.target.selectionStart ?? e.target.value.length);
            setOpen(true);
            setActive(0);
            syncScroll();
          }}
          onSelect={(e) => {
            setCaret((e.target as HTMLInputElement).selectionStart ?? 0);
            syncScroll();
          }}
          onScroll={syncScroll}
          onKeyDown={onKeyDown}
          onBlur={() => setTimeout(() => setOpen(false), 150)}
        />
        {suggestions.length > 0 && (
          <ul className="suggestions" role="listbox">
            {suggestions.map((s, i) => (
              <li
                key={s.label}
                role="option"
                aria-selected={i === active}
                className={i === active ? 'active' : ''}
                onMouseDown={(e) => {
                  e.preventDefault();
                  accept(s);
                }}
              >
                <code>{s.label}</code>
                <span className="muted">{s.detail}</span>
              </li>
            ))}
          </ul>
        )}
        {showHistory && (
          <ul className="suggestions" role="listbox" aria-label="Filter history">
            {history.length === 0 && <li className="muted">No filters applied yet.</li>}
            {history.map((h) => (
              <li
                key={h}
                onMouseDown={(e) => {
                  e.preventDefault();
                  onChange(h);
                  apply(h);
                }}
              >
                <code>{h}</code>
              </li>
            ))}
          </ul>
        )}
      </div>
      <button type="button" className="btn" title="Filter history" onClick={() => setShowHistory((s) => !s)}>
        History
      </button>
      <button type="button" className={`btn ${dirty ? 'primary' : ''}`} onClick={() => apply(value)} disabled={!!error} data-testid="filter-apply">
        Apply
      </button>
      {value && (
        <button
          type="button"
          className="btn"
          onClick={() => {
            onChange('');
            apply('');
          }}
        >
          Clear
        </button>
      )}
      <div className="filter-status" data-testid="filter-status">
        {error ? (
          <span className="err">
            <span className="caret-mark">^</span> {error.message} <span className="muted">(at {error.start + 1})</span>
          </span>
        ) : checkErr ? (
          <span className="muted">Could not check the filter: {checkErr}</span>
        ) : dirty ? (
          <span className="muted">Press Enter to apply</span>
        ) : null}
      </div>
    </div>
  );
}
