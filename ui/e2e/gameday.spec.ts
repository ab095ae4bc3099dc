import { expect, test } from '@playwright/test';

import { expectAccessible, screenshot, useAdminToken } from './pages';

test('the baseline game day started from the console passes and its report opens', async ({ page, context }) => {
  test.setTimeout(180_000);
  await page.goto('/gamedays');
  await useAdminToken(page);
  await expect(page.getByRole('heading', { name: 'baseline', level: 3 })).toBeVisible();
  await expectAccessible(page);
  await screenshot(page, 'gamedays');
  await page.getByRole('button', { name: 'Start baseline' }).click();

  // The run's page follows it live, then shows the verdict and the audit.
  await expect(page.getByTestId('run-state')).toHaveText('running');
  await expect(page.getByRole('progressbar', { name: 'Elapsed' })).toBeVisible();
  await screenshot(page, 'gameday-running');
  await expect(page.getByTestId('run-state')).toHaveText('passed', { timeout: 150_000 });
  const audit = page.getByRole('table', { name: 'Audit' });
  for (const check of ['every-order-final', 'money-conserved', 'stock-conserved', 'outbox-relayed']) {
    await expect(audit.getByRole('row').filter({ hasText: check }).getByText('passed')).toBeVisible();
  }
  await expectAccessible(page);
  await screenshot(page, 'gameday-passed');

  const [report] = await Promise.all([context.waitForEvent('page'), page.getByRole('link', { name: 'Open the report' }).click()]);
  await report.waitForLoadState();
  await expect(report.locator('svg')).toHaveCount(4);
  await expect(report.getByText('every-order-final').first()).toBeVisible();
  await report.screenshot({ path: 'e2e/screenshots/gameday-report.png', fullPage: true });
});
