// Bounded in-memory stores for the live stream: the visible list (newest
// first, capped, trimmed entries counted) and the pause buffer (capped, the
// overflow counted so the UI can say how much was skipped).

export class BoundedList<T> {
  // Oldest first internally so appends are O(1); `at(0)` is the newest.
  private items: T[] = [];
  private head = 0;
  trimmed = 0;

  constructor(readonly capacity: number) {
    if (!(capacity > 0)) throw new Error(`capacity must be positive, got ${capacity}`);
  }

  get length(): number {
    return this.items.length - this.head;
  }

  push(...xs: T[]): void {
    for (const x of xs) this.items.push(x);
    const over = this.length - this.capacity;
    if (over > 0) {
      this.head += over;
      this.trimmed += over;
    }
    // Compact lazily so trimming is amortised O(1) per entry.
    if (this.head > this.capacity / 2 && this.head > 1024) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }

  /** Newest-first index. */
  at(i: number): T | undefined {
    if (i < 0 || i >= this.length) return undefined;
    return this.items[this.items.length - 1 - i];
  }

  /** Newest-first index of the first item matching `pred`, or -1. */
  findIndex(pred: (x: T) => boolean): number {
    for (let i = this.items.length - 1; i >= this.head; i--) if (pred(this.items[i])) return this.items.length - 1 - i;
    return -1;
  }

  /** Oldest-first snapshot (for statistics). */
  toArray(): T[] {
    return this.items.slice(this.head);
  }

  clear(): void {
    this.items = [];
    this.head = 0;
    this.trimmed = 0;
  }
}

export class PauseBuffer<T> {
  private items: T[] = [];
  dropped = 0;

  constructor(readonly capacity: number) {}

  get length(): number {
    return this.items.length;
  }

  add(x: T): void {
    if (this.items.length >= this.capacity) {
      // Keep the oldest: the gap is then one contiguous span after them.
      this.dropped++;
      return;
    }
    this.items.push(x);
  }

  drain(): { items: T[]; dropped: number } {
    const out = { items: this.items, dropped: this.dropped };
    this.items = [];
    this.dropped = 0;
    return out;
  }
}
