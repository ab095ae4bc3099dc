import { expect, test } from '@playwright/test';

import { expectAccessible, screenshot } from './pages';

test('an order placed from the console reaches COMPLETED in the list and the timeline', async ({ page }) => {
  await page.goto('/orders');
  await expect(page.getByRole('heading', { name: 'Orders', level: 1 })).toBeVisible();
  await page.getByRole('button', { name: 'Valid order' }).click();
  await page.getByRole('button', { name: 'Place order' }).click();
  const placed = page.getByRole('status').getByRole('link');
  await expect(placed).toBeVisible();
  const id = (await placed.textContent())?.trim() ?? '';
  expect(id).toMatch(/^[0-9a-f-]{36}$/);

  // The list refreshes by itself: the new order shows up and ends COMPLETED.
  const row = page.getByRole('row').filter({ has: page.getByRole('link', { name: id.slice(0, 8) }) });
  await expect(row.getByText('COMPLETED')).toBeVisible();
  await expectAccessible(page);
  await screenshot(page, 'orders');

  // The detail: status, and each step succeeded on the timeline.
  await placed.click();
  await expect(page.getByTestId('order-status')).toHaveText('COMPLETED');
  const timeline = page.getByRole('list', { name: 'Saga timeline' });
  for (const step of ['payment', 'inventory', 'shipping']) {
    await expect(timeline.getByRole('listitem').filter({ hasText: step }).getByText('succeeded', { exact: true })).toBeVisible();
  }
  await expect(timeline.getByText('completed', { exact: true })).toBeVisible();
  // The saga graph with this order's path, and its trace.
  await expect(page.getByRole('img', { name: /this order's path: payment: ok, inventory: ok, shipping: ok, completed: ok/ })).toBeVisible();
  await expect(page.getByTestId('trace-id')).toHaveText(/^[0-9a-f]{32}$/);
  await expectAccessible(page);
  await screenshot(page, 'order-completed');
});

test('an order to country ZZ is cancelled and its completed steps are compensated', async ({ page }) => {
  await page.goto('/orders');
  await page.getByRole('button', { name: 'Country ZZ' }).click();
  await page.getByRole('button', { name: 'Place order' }).click();
  await page.getByRole('status').getByRole('link').click();
  await expect(page.getByTestId('order-status')).toHaveText('CANCELLED');
  const timeline = page.getByRole('list', { name: 'Saga timeline' });
  await expect(timeline.getByRole('listitem').filter({ hasText: 'shipping' }).getByText('failed', { exact: true })).toBeVisible();
  await expect(timeline.getByRole('listitem').filter({ hasText: 'undo payment' }).getByText('compensated', { exact: true })).toBeVisible();
  await expect(timeline.getByRole('listitem').filter({ hasText: 'undo inventory' }).getByText('compensated', { exact: true })).toBeVisible();
  await screenshot(page, 'order-cancelled');

  // The list filters by status and by customer.
  await page.goto('/orders');
  await page.getByLabel('Status').selectOption('CANCELLED');
  await page.getByLabel('Customer starts with').fill('customer-44');
  await expect(page.getByRole('row').filter({ hasText: 'customer-44' }).first()).toBeVisible();
  await expect(page.getByRole('row').filter({ hasText: 'COMPLETED' })).toHaveCount(0);
});

test('a path the console does not know shows its not-found page, an unknown API path a JSON 404', async ({ page, request }) => {
  await page.goto('/no/such/page');
  await expect(page.getByRole('heading', { name: 'No such page' })).toBeVisible();
  const api = await request.get('/api/no-such-route');
  expect(api.status()).toBe(404);
  expect((await api.json()).error).toContain('no route');
});

test('the runtime page shows readiness, every service and the relay', async ({ page }) => {
  await page.goto('/runtime');
  await expect(page.getByTestId('readiness')).toHaveText('ready');
  const services = page.getByRole('table', { name: 'Services' });
  for (const service of ['order-api', 'orchestrator', 'payment-svc', 'gameday-svc']) {
    await expect(services.getByRole('cell', { name: service, exact: true })).toBeVisible();
  }
  await expect(page.getByRole('heading', { name: 'Outbox relay' })).toBeVisible();
  await expectAccessible(page);
  await screenshot(page, 'runtime');
});
