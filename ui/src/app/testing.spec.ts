// Helpers the unit tests share: providers for HTTP through HttpTestingController, waiting for
// a page's first live round and its rendering (zoneless), and reading and driving the DOM as
// a user would. It holds no test itself.
import { provideHttpClient, withInterceptors } from '@angular/common/http';
import { HttpTestingController, TestRequest, provideHttpClientTesting } from '@angular/common/http/testing';
import { EnvironmentProviders, Provider } from '@angular/core';
import { ComponentFixture, TestBed } from '@angular/core/testing';
import { provideRouter } from '@angular/router';

import { AdminToken, adminTokenInterceptor } from './api/admin-token';

/** The admin token the tests set; mutating calls must carry it. */
export const TEST_TOKEN = 'test-admin-token';

/** HTTP through the testing backend, with the console's own interceptor; a router with no routes. */
export function testProviders(): (Provider | EnvironmentProviders)[] {
  return [provideHttpClient(withInterceptors([adminTokenInterceptor])), provideHttpClientTesting(), provideRouter([])];
}

/** Sets up TestBed for a typed API client: the HTTP testing backend and an admin token in use. */
export function apiTesting(): HttpTestingController {
  sessionStorage.clear();
  TestBed.configureTestingModule({ providers: testProviders() });
  TestBed.inject(AdminToken).set(TEST_TOKEN);
  return TestBed.inject(HttpTestingController);
}

/** The admin token of a request ('' when it has none). */
export function bearer(request: TestRequest): string {
  return request.request.headers.get('Authorization') ?? '';
}

/** Lets the first round of `live()` run (it waits one macrotask) and the view render. */
export async function settle(fixture: ComponentFixture<unknown>): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, 0));
  await fixture.whenStable();
}

/** The root element of a fixture. */
export function root(fixture: ComponentFixture<unknown>): HTMLElement {
  return fixture.nativeElement as HTMLElement;
}

/** An element's text as rendered (cells and blocks apart), its white space folded. */
export function textOf(element: Element | null | undefined): string {
  const text = element instanceof HTMLElement ? element.innerText : (element?.textContent ?? '');
  return text.replace(/\s+/g, ' ').trim();
}

/** The button whose text (or aria-label) is `name`; fails the test when there is none. */
export function button(fixture: ComponentFixture<unknown>, name: string): HTMLButtonElement {
  const all = Array.from(root(fixture).querySelectorAll('button'));
  const found = all.find((b) => b.getAttribute('aria-label') === name || textOf(b) === name);
  if (!found) throw new Error(`no button "${name}" among: ${all.map((b) => b.getAttribute('aria-label') ?? textOf(b)).join(' | ')}`);
  return found;
}

/** Whether a button named `name` is shown. */
export function hasButton(fixture: ComponentFixture<unknown>, name: string): boolean {
  return Array.from(root(fixture).querySelectorAll('button')).some((b) => b.getAttribute('aria-label') === name || textOf(b) === name);
}

/** The form control whose label reads `name` (a wrapping label or one with `for`). */
export function control<T extends HTMLElement = HTMLInputElement>(fixture: ComponentFixture<unknown>, name: string | RegExp): T {
  const labels = Array.from(root(fixture).querySelectorAll('label'));
  const matches = (l: HTMLLabelElement) => {
    const own = textOf(l).replace(textOf(l.querySelector('select')), '').trim();
    return typeof name === 'string' ? own === name : name.test(own);
  };
  const label = labels.find(matches);
  const found = label?.control ?? null;
  if (!found) throw new Error(`no control labelled ${name} among: ${labels.map((l) => textOf(l)).join(' | ')}`);
  return found as unknown as T;
}

/** Types into an input or textarea as a user would (the value, then an `input` event). */
export function typeInto(element: HTMLInputElement | HTMLTextAreaElement, value: string): void {
  element.value = value;
  element.dispatchEvent(new Event('input'));
}

/** Picks the option whose text is `text` in a select, then a `change` event. */
export function choose(select: HTMLSelectElement, text: string): void {
  const index = Array.from(select.options).findIndex((o) => textOf(o) === text);
  if (index < 0) throw new Error(`no option "${text}" among: ${Array.from(select.options).map((o) => textOf(o)).join(' | ')}`);
  select.selectedIndex = index;
  select.dispatchEvent(new Event('change'));
}

/** The body rows of the table labelled `label`, each as its cells' texts. */
export function rows(fixture: ComponentFixture<unknown>, label: string): string[][] {
  const table = root(fixture).querySelector(`table[aria-label="${label}"]`);
  if (!table) throw new Error(`no table "${label}"`);
  return Array.from(table.querySelectorAll('tbody tr')).map((tr) => Array.from(tr.querySelectorAll('td')).map((td) => textOf(td)));
}
