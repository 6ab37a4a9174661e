import { describe, expect, it } from 'vitest';
import { endpointLabel, formatBytes, formatClock, formatDuration, fromLocalInput, statusClass, statusText } from './format';

const e = (status: number | null, flag = 'http', vars = {}, complete = true) => ({ status, flag, vars, complete });

describe('formatting', () => {
  it('formats clock time with microseconds', () => {
    expect(formatClock('2026-11-25T18:32:20.066343Z')).toBe('18:32:20.066343');
    expect(formatClock('2026-11-25T18:32:20Z')).toBe('18:32:20.000000');
  });
  it('formats durations across units', () => {
    expect(formatDuration(88)).toBe('88 µs');
    expect(formatDuration(1250)).toBe('1.25 ms');
    expect(formatDuration(3_400_000)).toBe('3.40 s');
    expect(formatDuration(125_000_000)).toBe('2m 05s');
    expect(formatDuration(-1)).toBe('–');
  });
  it('formats sizes in binary units', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1536)).toBe('1.50 KiB');
    expect(formatBytes(20 * 1024 * 1024)).toBe('20.0 MiB');
  });
  it('labels endpoints by name, else IP, bracketing IPv6', () => {
    expect(endpointLabel({ ip: '10.0.0.1', port: 80, name: 'api' })).toBe('api:80');
    expect(endpointLabel({ ip: '10.0.0.1', port: 80, name: '10.0.0.1' })).toBe('10.0.0.1:80');
    expect(endpointLabel({ ip: '::1', port: 53, name: '::1' })).toBe('[::1]:53');
  });
  it('classifies statuses per protocol', () => {
    expect(statusClass(e(200))).toBe('ok');
    expect(statusClass(e(302))).toBe('redirect');
    expect(statusClass(e(404))).toBe('client-error');
    expect(statusClass(e(503))).toBe('server-error');
    expect(statusClass(e(0, 'dns'))).toBe('ok');
    expect(statusClass(e(3, 'dns'))).toBe('error');
    expect(statusClass(e(null, 'redis', { redis_error: true }))).toBe('error');
    expect(statusClass(e(null, 'redis', { redis_error: false }))).toBe('none');
  });
  it('shows the DNS rcode name and incomplete entries', () => {
    expect(statusText(e(3, 'dns', { dns_rcode_name: 'NXDOMAIN' }))).toBe('3 NXDOMAIN');
    expect(statusText(e(null, 'http', {}, false))).toBe('no reply');
  });
  it('parses datetime-local input as UTC', () => {
    expect(fromLocalInput('2026-11-25T18:32')).toBe('2026-11-25T18:32:00.000Z');
    expect(fromLocalInput('')).toBeNull();
  });
});
