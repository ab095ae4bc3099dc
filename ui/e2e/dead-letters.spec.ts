import { expect, test } from '@playwright/test';

import { ADMIN_TOKEN, expectAccessible, screenshot, useAdminToken } from './pages';

test('a dead letter is replayed from the console with an edited payload and leaves new', async ({ page, request }) => {
  const auth = { Authorization: `Bearer ${ADMIN_TOKEN}` };
  // A payment that fails every attempt ends on payment.requested.dlq.
  const rule = { id: 'ui-dead-letter', ttl: '5m', target: { kind: 'handler', handler: 'payment.charge' }, fault: { kind: 'error', message: 'gateway down' } };
  expect((await request.post('/api/chaos/rules', { headers: auth, data: rule })).status()).toBe(201);
  const order = { customerId: 'dlq-customer', currency: 'EUR', items: [{ sku: 'SKU-1', quantity: 1, unitPrice: 100 }], shipTo: { country: 'DE' } };
  const placed = await (await request.post('/api/orders', { data: order })).json();
  await expect
    .poll(async () => (await (await request.get(`/api/dlq/entries?topic=payment.requested.dlq&q=${placed.orderId}`)).json()).entries.length, { timeout: 30_000 })
    .toBeGreaterThan(0);
  expect((await request.delete('/api/chaos/rules/ui-dead-letter', { headers: auth })).status()).toBe(204);

  await page.goto('/dead-letters');
  await useAdminToken(page);
  await expect(page.getByRole('table', { name: 'Dead-letter topics' }).getByText('payment.requested.dlq')).toBeVisible();
  await page.getByRole('searchbox', { name: 'Text in key or payload' }).fill(placed.orderId);
  const entries = page.getByRole('table', { name: 'Dead-letter entries' });
  const mine = entries.getByRole('row').filter({ has: page.getByRole('link', { name: placed.orderId.slice(0, 8) }) });
  await expect(mine.first().getByText('handler_failed')).toBeVisible();
  // A time window after it hides it; cleared, it is back.
  await page.getByLabel('From').fill('2999-01-01T00:00');
  await expect(mine).toHaveCount(0);
  await page.getByLabel('From').fill('');
  await expect(mine.first()).toBeVisible();
  await expectAccessible(page);
  await screenshot(page, 'dead-letters');
  await mine.first().getByRole('link', { name: /^#\d+$/ }).click();
  await expect(page.getByTestId('entry-state')).toHaveText('new');
  await expect(page.getByRole('table', { name: 'Headers' }).getByRole('cell', { name: 'dlq_error_kind', exact: true })).toBeVisible();

  // An edit the schema refuses is refused with the reason at its line, and nothing is sent.
  const editor = page.getByRole('textbox', { name: /Payload/ });
  const original = await editor.inputValue();
  const broken = original.replace(/"total": \d+/, '"total": "lots"');
  expect(broken).not.toBe(original);
  await editor.fill(broken);
  await page.getByRole('button', { name: 'Replay' }).click();
  await expect(page.getByRole('alert')).toContainText('422');
  const line = broken.split('\n').findIndex((l) => l.includes('"total"')) + 1;
  await expect(page.getByRole('button', { name: new RegExp(`^line ${line} · /total: `) })).toBeVisible();
  await expect(editor).toHaveAttribute('aria-invalid', 'true');
  await expect(page.getByTestId('entry-state')).toHaveText('new');
  await expectAccessible(page);

  // A valid edit goes.
  await editor.fill(original.replace('dlq-customer', 'dlq-customer-edited'));
  await page.getByRole('button', { name: 'Replay' }).click();
  await expect(page.getByRole('status')).toContainText('edited payload');
  await expect(page.getByTestId('entry-state')).toHaveText('replayed');
  await expectAccessible(page);
  await screenshot(page, 'dead-letter');
});
