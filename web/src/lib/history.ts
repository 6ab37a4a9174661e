// Filter history in localStorage: most recent first, unique, capped.

const KEY = 'remora.filterHistory';
const MAX = 30;

export function pushHistory(list: string[], filter: string, max = MAX): string[] {
  const f = filter.trim();
  if (!f) return list;
  return [f, ...list.filter((x) => x !== f)].slice(0, max);
}

export function loadHistory(): string[] {
  try {
    const v = JSON.parse(localStorage.getItem(KEY) ?? '[]');
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string').slice(0, MAX) : [];
  } catch {
    return [];
  }
}

export function saveHistory(list: string[]): void {
  try {
    localStorage.setItem(KEY, JSON.stringify(list.slice(0, MAX)));
  } catch {
    // Storage full or disabled (private mode): history is a convenience only.
  }
}
