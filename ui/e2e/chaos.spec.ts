import { expect, test } from '@playwright/test';

import { expectAccessible, screenshot, useAdminToken } from './pages';

test('a chaos rule made in the console fails payments, shows in the feed, and is deleted', async ({ page }) => {
  await page.goto('/chaos');
  await expect(page.getByRole('heading', { name: 'Chaos', level: 1 })).toBeVisible();

  // Without the token the API says 401, and the console says so.
  await page.getByRole('textbox', { name: 'Rule id', exact: true }).fill('ui-failing-payments');
  await page.getByRole('button', { name: 'Create rule' }).click();
  await expect(page.getByRole('alert')).toContainText('401');

  await useAdminToken(page);
  // A bad field comes back from the API at its name.
  await page.getByRole('textbox', { name: 'Rule id', exact: true }).fill('bad id!');
  await page.getByRole('button', { name: 'Create rule' }).click();
  await expect(page.getByRole('alert')).toContainText('id');

  await page.getByRole('textbox', { name: 'Rule id', exact: true }).fill('ui-failing-payments');
  await page.getByRole('combobox', { name: /^Target/ }).selectOption('handler');
  await page.getByRole('textbox', { name: 'Handler', exact: true }).fill('payment.charge');
  await page.getByRole('combobox', { name: /^Fault/ }).selectOption('error');
  await page.getByRole('textbox', { name: 'Message', exact: true }).fill('card gateway down (console test)');
  await page.getByRole('textbox', { name: 'Blast radius, share of orders (0–1)', exact: true }).fill('1');
  await page.getByRole('textbox', { name: 'Lease', exact: true }).fill('5m');
  await page.getByRole('button', { name: 'Create rule' }).click();
  const rules = page.getByRole('table', { name: 'Chaos rules' });
  const rule = rules.getByRole('row').filter({ hasText: 'ui-failing-payments' });
  await expect(rule.getByText('active', { exact: true })).toBeVisible();
  // Edited: the form takes the rule, and saves it with PUT.
  await rule.getByRole('button', { name: 'Edit ui-failing-payments' }).click();
  await expect(page.getByRole('heading', { name: 'Edit rule ui-failing-payments' })).toBeVisible();
  await page.getByRole('textbox', { name: 'Message', exact: true }).fill('card gateway down (edited in the console)');
  await page.getByRole('button', { name: 'Save rule' }).click();
  await expect(rule).toContainText('edited in the console');
  await expectAccessible(page);

  // An order meets the fault: its payment fails, the order is cancelled.
  await page.goto('/orders');
  await page.getByRole('button', { name: 'Valid order' }).click();
  await page.getByRole('button', { name: 'Place order' }).click();
  const placed = page.getByRole('status').getByRole('link');
  const id = ((await placed.textContent()) ?? '').trim();
  await placed.click();
  await expect(page.getByTestId('order-status')).toHaveText('CANCELLED', { timeout: 60_000 });
  const timeline = page.getByRole('list', { name: 'Saga timeline' });
  await expect(timeline.getByRole('listitem').filter({ hasText: 'undo payment' }).getByText('compensated', { exact: true })).toBeVisible();
  // The fault and the dead letter that concern this order, on its page.
  await expect(page.getByRole('table', { name: 'Injections into this order' }).getByText('ui-failing-payments').first()).toBeVisible();
  await expect(page.getByRole('table', { name: 'Dead letters of this order' }).getByText('payment.requested.dlq')).toBeVisible();
  await expect(page.getByRole('img', { name: /payment: bad/ })).toBeVisible();
  await screenshot(page, 'order-payment-failed');

  // The injection is in the feed, linked to the order; then the rule goes.
  await page.goto('/chaos');
  const feed = page.getByRole('table', { name: 'Injections' });
  await expect(feed.getByRole('row').filter({ hasText: 'ui-failing-payments' }).getByRole('link', { name: id.slice(0, 8) }).first()).toBeVisible();
  await screenshot(page, 'chaos');
  await rule.getByRole('button', { name: 'Delete ui-failing-payments' }).click();
  await expect(rules.getByRole('row').filter({ hasText: 'ui-failing-payments' })).toHaveCount(0);
});
