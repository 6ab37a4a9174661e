// Shared headless Chromium launch (Debian's chromium; playwright-core never downloads a browser).
import { chromium } from 'playwright-core';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ARTIFACTS = join(dirname(fileURLToPath(import.meta.url)), 'artifacts');

/** `extraArgs`: more Chromium switches (the scroll bench turns off the frame-rate limit). */
export async function launch(extraArgs = []) {
  mkdirSync(ARTIFACTS, { recursive: true });
  const userDataDir = mkdtempSync(join(tmpdir(), 'remora-chromium-'));
  const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium';
  const args = [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ...extraArgs,
  ];
  const context = await chromium.launchPersistentContext(userDataDir, { executablePath, headless: true, args, viewport: { width: 1280, height: 800 } });
  // A profile per run: remove it with the browser so runs do not fill /tmp
  // (at exit: Chromium's last writes land after the context's 'close').
  process.on('exit', () => {
    try {
      rmSync(userDataDir, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
    } catch (e) {
      console.error(`could not remove the browser profile ${userDataDir}: ${e.message}`);
    }
  });
  return context;
}

/** Collects console errors and page errors so a run fails on them. */
export function watchConsole(page, allow = []) {
  const errors = [];
  page.on('console', (m) => {
    if (m.type() === 'error' && !allow.some((re) => re.test(m.text()))) errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(String(e)));
  return errors;
}
