import AxeBuilder from '@axe-core/playwright';
import { Page, expect } from '@playwright/test';

/** Saves a full-page screenshot for reviewers (`ui/e2e/screenshots/`, not committed). */
export async function screenshot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: `e2e/screenshots/${name}.png`, fullPage: true });
}

/** axe-core on the page as it is: no serious or critical violation. */
export async function expectAccessible(page: Page): Promise<void> {
  const results = await new AxeBuilder({ page }).analyze();
  const bad = results.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  expect(bad.map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`)).toEqual([]);
}

/** The development token of the shipped pipelines, entered once in the header. */
export const ADMIN_TOKEN = 'local-dev-token-change-me';

export async function useAdminToken(page: Page): Promise<void> {
  const field = page.getByLabel('Admin token');
  if (await field.isVisible()) {
    await field.fill(ADMIN_TOKEN);
    await page.getByRole('button', { name: 'Use' }).click();
  }
  await expect(page.getByText('admin token set')).toBeVisible();
}
