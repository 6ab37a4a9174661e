import { describe, expect, it } from 'vitest';
import { mainThreadFrames, pipelineStates, quantile, summarize } from './frames.mjs';

const MAIN = { pid: 10, tid: 10 };
const mark = (name, ts, where = MAIN) => ({ cat: 'blink.user_timing', name, ph: 'I', ts, ...where });
const begin = (ts, where = MAIN) => ({ cat: 'disabled-by-default-devtools.timeline.frame', name: 'BeginMainThreadFrame', ph: 'I', ts, ...where });
const task = (ts, dur, tdur, where = MAIN) => ({ cat: 'disabled-by-default-devtools.timeline', name: 'RunTask', ph: 'X', ts, dur, tdur, ...where });
const reporter = (ts, state, pid = MAIN.pid) => ({ name: 'PipelineReporter', ph: 'b', ts, pid, tid: 99, args: { frame_reporter: { state } } });

describe('quantile and summarize', () => {
  it('uses the nearest rank', () => {
    const s = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    expect(quantile(s, 0.5)).toBe(5);
    expect(quantile(s, 0.95)).toBe(10);
    expect(quantile(s, 0)).toBe(1);
    expect(quantile([], 0.5)).toBeNaN();
  });
  it('sorts, and counts values over the budget', () => {
    const r = summarize([20, 1, 3, 17, 2], 16);
    expect(r).toEqual({ n: 5, p50: 3, p95: 20, p99: 20, max: 20, over: 2 });
  });
});

describe('mainThreadFrames', () => {
  // Frames begin at 1000, 2000 and 3000 µs; the last one is incomplete.
  const trace = [
    mark('run-start', 500),
    task(400, 50, 40), // before the start mark: ignored
    task(990, 300, 200), // runs the first frame (its begin lies inside)
    begin(1000),
    task(1500, 100, 90), // React's render task after the frame
    task(1990, 1000, 800), // the second frame
    begin(2000),
    task(1995, 5000, 5000, { pid: 10, tid: 11 }), // another thread: ignored
    begin(2500, { pid: 11, tid: 11 }), // another renderer: ignored
    task(2995, 100, 100), // the incomplete last frame: left out
    begin(3000),
    mark('run-end', 3200),
  ];
  it('sums the main thread tasks of each frame, CPU and wall', () => {
    const round = (f) => Object.fromEntries(Object.entries(f).map(([k, v]) => [k, Math.round(v * 1000) / 1000]));
    const frames = mainThreadFrames(trace, 'run-start', 'run-end').map(round);
    expect(frames).toEqual([
      { start: 1000, interval: 1, cpu: 0.29, wall: 0.4 },
      { start: 2000, interval: 1, cpu: 0.8, wall: 1 },
    ]);
  });
  it('falls back to wall time when a task has no thread time', () => {
    const frames = mainThreadFrames([mark('s', 0), begin(10), task(20, 300, undefined), begin(1000), mark('e', 1100)], 's', 'e');
    expect(frames).toEqual([{ start: 10, interval: 0.99, cpu: 0.3, wall: 0.3 }]);
  });
  it('names what is missing', () => {
    expect(() => mainThreadFrames(trace, 'nope-start', 'run-end')).toThrow(/"nope-start"/);
    expect(() => mainThreadFrames([mark('s', 0), begin(10), mark('e', 20)], 's', 'e')).toThrow(/1 BeginMainThreadFrame/);
  });
});

describe('pipelineStates', () => {
  it('counts the renderer compositor frames between the marks by state', () => {
    const trace = [
      mark('s', 100),
      reporter(50, 'STATE_DROPPED'), // before the run
      reporter(150, 'STATE_PRESENTED_ALL'),
      reporter(160, 'STATE_PRESENTED_ALL'),
      reporter(170, 'STATE_DROPPED'),
      reporter(175, 'STATE_DROPPED', 1), // the browser process
      mark('e', 200),
    ];
    expect(pipelineStates(trace, 's', 'e')).toEqual({ STATE_PRESENTED_ALL: 2, STATE_DROPPED: 1 });
  });
});
