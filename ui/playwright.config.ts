import { defineConfig } from '@playwright/test';

/**
 * End-to-end tests of the console against a real `runner up` (the whole system on embedded
 * defaults, a throw-away SQLite file), driven in Debian's `chromium`: Playwright's own
 * browser download is not used. scripts/test sets RUNNER_BIN and builds the console first.
 */
const port = Number(process.env['E2E_PORT'] ?? 18480);
const runner = process.env['RUNNER_BIN'] ?? `${process.env['HOME']}/.cache/chaos-symphony/target/debug/runner`;

export default defineConfig({
  testDir: './e2e',
  outputDir: './e2e/results',
  timeout: 90_000,
  expect: { timeout: 20_000 },
  fullyParallel: false,
  workers: 1,
  retries: 0,
  reporter: [['list']],
  use: {
    baseURL: `http://127.0.0.1:${port}`,
    browserName: 'chromium',
    launchOptions: {
      executablePath: process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium',
      args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
    },
    viewport: { width: 1366, height: 900 },
    trace: 'retain-on-failure',
  },
  webServer: {
    command: `bash -c 'data=$(mktemp -d) && exec "${runner}" up ../pipelines --data-dir "$data" --listen 127.0.0.1:${port}'`,
    url: `http://127.0.0.1:${port}/readyz`,
    timeout: 120_000,
    reuseExistingServer: false,
    env: { RUNNER_CONSOLE_DIR: 'dist/console/browser', RUST_LOG: 'error,rdkafka=off,librdkafka=off' },
    stdout: 'ignore',
    stderr: 'pipe',
  },
});
