// Window math for a fixed-row-height virtual list: which rows to render for a
// scroll position, and how to keep a selected row visible.

export interface VirtualWindow {
  /** First row index rendered (inclusive). */
  start: number;
  /** Last row index rendered (exclusive). */
  end: number;
  /** Pixel offset of row `start` from the top of the scroll content. */
  offsetTop: number;
  /** Height of the whole scroll content. */
  totalHeight: number;
}

// Overscan rows cost layout and paint on every jump across the list (all of
// them are new then) while they only help when the compositor scrolls ahead
// of the main thread, so a few suffice.
export function computeWindow(count: number, rowHeight: number, scrollTop: number, viewportHeight: number, overscan = 3): VirtualWindow {
  const totalHeight = count * rowHeight;
  if (count === 0 || rowHeight <= 0) return { start: 0, end: 0, offsetTop: 0, totalHeight: 0 };
  const maxTop = Math.max(0, totalHeight - viewportHeight);
  const top = Math.min(Math.max(0, scrollTop), maxTop);
  const first = Math.floor(top / rowHeight);
  const visible = Math.ceil(viewportHeight / rowHeight) + 1;
  const start = Math.max(0, first - overscan);
  const end = Math.min(count, first + visible + overscan);
  return { start, end, offsetTop: start * rowHeight, totalHeight };
}

/** The scrollTop that makes row `index` fully visible, or the current one if it already is. */
export function scrollToReveal(index: number, rowHeight: number, scrollTop: number, viewportHeight: number): number {
  const rowTop = index * rowHeight;
  const rowBottom = rowTop + rowHeight;
  if (rowTop < scrollTop) return rowTop;
  if (rowBottom > scrollTop + viewportHeight) return rowBottom - viewportHeight;
  return scrollTop;
}

/** Keyboard movement within [0, count): arrows, page keys, Home/End. */
export function moveSelection(current: number, key: string, count: number, pageRows: number): number {
  if (count === 0) return -1;
  const clamp = (i: number) => Math.min(count - 1, Math.max(0, i));
  switch (key) {
    case 'ArrowDown':
      return current < 0 ? 0 : clamp(current + 1);
    case 'ArrowUp':
      return current < 0 ? 0 : clamp(current - 1);
    case 'PageDown':
      return clamp(current + pageRows);
    case 'PageUp':
      return clamp(current - pageRows);
    case 'Home':
      return 0;
    case 'End':
      return count - 1;
    default:
      return current;
  }
}
