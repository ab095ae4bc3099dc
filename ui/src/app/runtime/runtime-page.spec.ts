// Unit tests of the runtime page: readiness (also from a 503), services and relay, and the
// console's links: where the address in force comes from, saving and clearing this browser's.
import { HttpTestingController } from '@angular/common/http/testing';
import { ComponentFixture, TestBed } from '@angular/core/testing';

import { button, control, hasButton, root, rows, settle, testProviders, textOf, typeInto } from '../testing.spec';
import { RuntimePage } from './runtime-page';

describe('RuntimePage', () => {
  let fixture: ComponentFixture<RuntimePage>;
  let http: HttpTestingController;
  const source = (link: string) => textOf(root(fixture).querySelector(`[data-testid="${link}-source"]`));

  async function open(settings: () => void): Promise<void> {
    fixture = TestBed.createComponent(RuntimePage);
    settings();
    await settle(fixture);
    http.expectOne({ method: 'GET', url: '/api/runtime/config' }).flush({
      services: [{ service: 'order-api', path: 'pipelines/order-api.toml', hash: 'ab12', lastResult: 'loaded', lastError: null }],
    });
    http.expectOne({ method: 'GET', url: '/api/relay/status' }).flush({ mode: 'logical', lagSeconds: 0.25, publishedTotal: 42, inFlightRows: 1, reconnects: 0 });
    http.expectOne({ method: 'GET', url: '/readyz' }).flush(
      { ready: false, database: true, broker: false, partsDown: ['relay'], parts: { relay: { up: false, restarts: 2, lastFailure: 'broker down' } } },
      { status: 503, statusText: 'Service Unavailable' },
    );
    await fixture.whenStable();
  }

  const serverSets = (body: object) => () => http.expectOne({ method: 'GET', url: '/api/console/settings' }).flush(body);

  beforeEach(() => {
    localStorage.clear();
    TestBed.configureTestingModule({ imports: [RuntimePage], providers: testProviders() });
    http = TestBed.inject(HttpTestingController);
  });

  afterEach(() => {
    http.verify();
    localStorage.clear();
  });

  it('shows readiness part by part (from a 503 too), the services and the relay', async () => {
    await open(serverSets({ traceUrl: null, grafanaUrl: null }));
    expect(textOf(root(fixture).querySelector('[data-testid="readiness"]'))).toBe('not ready');
    expect(textOf(root(fixture).querySelector('.ready'))).toContain('database up · broker down · down: relay');
    expect(rows(fixture, 'Services')).toEqual([['order-api', 'pipelines/order-api.toml', 'ab12', 'loaded', '']]);
    expect(rows(fixture, 'Parts')).toEqual([['relay', 'no', '2', 'broker down']]);
    expect(textOf(root(fixture))).toContain('mode logical · lag 0.3 s · 42 published · 1 in flight · 0 reconnects');
    expect(root(fixture).querySelector('[role="alert"]')).toBeNull();
  });

  it("says where each link in force comes from, and lets this browser's own win", async () => {
    await open(serverSets({ traceUrl: 'http://jaeger:16686/trace/{traceId}', grafanaUrl: null }));
    expect(source('trace')).toBe('In force: http://jaeger:16686/trace/{traceId}, from the server.');
    expect(source('grafana')).toBe('None: neither this browser nor the server sets one.');
    expect(control(fixture, 'Trace UI for this browser, a URL with {traceId}').placeholder).toBe('http://jaeger:16686/trace/{traceId}');
    expect(hasButton(fixture, "Clear this browser's Trace UI")).toBeFalse();

    typeInto(control(fixture, 'Trace UI for this browser, a URL with {traceId}'), 'https://tempo.example/t/{traceId}');
    typeInto(control(fixture, 'Grafana for this browser'), 'http://grafana:3000/');
    button(fixture, 'Save').click();
    await fixture.whenStable();
    expect(source('trace')).toBe('In force: https://tempo.example/t/{traceId}, from this browser.');
    expect(source('grafana')).toBe('In force: http://grafana:3000, from this browser.');
    expect(localStorage.getItem('chaos-symphony.trace-url')).toBe('https://tempo.example/t/{traceId}');
    expect(textOf(root(fixture).querySelector('[role="status"]'))).toBe('Saved.');

    button(fixture, "Clear this browser's Trace UI").click();
    await fixture.whenStable();
    expect(source('trace')).toBe('In force: http://jaeger:16686/trace/{traceId}, from the server.');
    expect(control(fixture, 'Trace UI for this browser, a URL with {traceId}').value).toBe('');
    expect(localStorage.getItem('chaos-symphony.trace-url')).toBeNull();
    expect(source('grafana')).toBe('In force: http://grafana:3000, from this browser.');
  });

  it('keeps only http(s) addresses, and says so', async () => {
    await open(serverSets({ traceUrl: null, grafanaUrl: null }));
    typeInto(control(fixture, 'Grafana for this browser'), 'javascript:alert(1)');
    await fixture.whenStable();
    button(fixture, 'Save').click();
    await fixture.whenStable();
    expect(textOf(root(fixture).querySelector('[role="status"]'))).toBe('Saved; not kept, as it is not an http(s) address: javascript:alert(1)');
    expect(source('grafana')).toBe('None: neither this browser nor the server sets one.');
    expect(control(fixture, 'Grafana for this browser').value).toBe('');
  });

  it("shows this browser's saved address in the form, and why the server's could not be read", async () => {
    localStorage.setItem('chaos-symphony.grafana-url', 'http://mine:3000');
    await open(() => http.expectOne('/api/console/settings').flush({ error: 'boom' }, { status: 500, statusText: 'Internal Server Error' }));
    expect(control(fixture, 'Grafana for this browser').value).toBe('http://mine:3000');
    expect(source('grafana')).toBe('In force: http://mine:3000, from this browser.');
    expect(textOf(root(fixture).querySelector('[data-testid="server-links-error"]'))).toBe("The runner's links could not be read: 500: boom");
  });
});
