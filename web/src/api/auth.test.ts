import { describe, expect, it } from 'vitest';
import { adoptTokenFromUrl, authToken } from './auth';

function memoryStorage(): Storage {
  const m = new Map<string, string>();
  return {
    get length() {
      return m.size;
    },
    clear: () => m.clear(),
    getItem: (k) => m.get(k) ?? null,
    key: (i) => [...m.keys()][i] ?? null,
    removeItem: (k) => void m.delete(k),
    setItem: (k, v) => void m.set(k, v),
  };
}

describe('token from the address', () => {
  it('is kept for the tab and leaves the address, the rest of which stays', () => {
    const store = memoryStorage();
    const urls: string[] = [];
    adoptTokenFromUrl({ href: 'http://h:8899/?q=dns&token=s%2Bcr%26t#/map' }, { replaceState: (_d, _u, url) => urls.push(String(url)) }, store);
    expect(authToken(store)).toBe('s+cr&t');
    expect(urls).toEqual(['http://h:8899/?q=dns#/map']);
  });

  it('leaves everything alone without one', () => {
    const store = memoryStorage();
    const urls: string[] = [];
    adoptTokenFromUrl({ href: 'http://h:8899/?q=http' }, { replaceState: (_d, _u, url) => urls.push(String(url)) }, store);
    expect(authToken(store)).toBeNull();
    expect(urls).toEqual([]);
  });
});
