import { expect, test } from '@playwright/test';

import { expectAccessible, screenshot, useAdminToken } from './pages';

test('the canary percentage changed in the console is in effect, with its reason among the decisions', async ({ page }) => {
  await page.goto('/canary');
  await useAdminToken(page);
  await expect(page.getByRole('heading', { name: /Step payment/ })).toBeVisible();
  await page.getByRole('spinbutton', { name: 'New percentage' }).fill('30');
  await page.getByRole('textbox', { name: 'Reason' }).fill('console rollout test');
  await page.getByRole('button', { name: 'Set' }).click();
  await expect(page.getByTestId('canary-percent')).toHaveText('30%');
  await expect(page.getByRole('table', { name: 'Canary decisions' }).getByRole('row').filter({ hasText: 'console rollout test' }).first()).toContainText('30%');
  await expect(page.locator('canvas')).toHaveCount(2);
  await expectAccessible(page);
  await screenshot(page, 'canary');
  // Back to none.
  await page.getByRole('spinbutton', { name: 'New percentage' }).fill('0');
  await page.getByRole('button', { name: 'Set' }).click();
  await expect(page.getByTestId('canary-percent')).toHaveText('0%');
});

test('the SLO page lists every objective with its budget and burn rates', async ({ page }) => {
  await page.goto('/slo');
  for (const name of ['order-success', 'order-latency']) {
    await expect(page.getByRole('heading', { name: new RegExp(`^${name}`) })).toBeVisible();
    await expect(page.getByRole('table', { name: `Burn rates of ${name}` }).getByText('SLOErrorBudgetBurnFast (page)')).toBeVisible();
    await expect(page.getByTestId(`slo-budget-${name}`)).toBeVisible();
  }
  await expectAccessible(page);
  await screenshot(page, 'slo');
});
