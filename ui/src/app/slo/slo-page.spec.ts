// Unit tests of the SLO page: objectives sorted by remaining budget, charts of the server's
// history (or "no samples yet"), and the range selector asking for its number of minutes.
import { HttpTestingController, TestRequest } from '@angular/common/http/testing';
import { ComponentFixture, TestBed } from '@angular/core/testing';

import { BurnRate, Objective, SloHistory } from '../api/slo';
import { choose, control, root, settle, testProviders, textOf } from '../testing.spec';
import { SloPage } from './slo-page';

const BURN: BurnRate[] = [
  { alert: 'SLOErrorBudgetBurnFast', severity: 'page', long: '1h', short: '5m', threshold: 14.4, longBurnRate: 0.5, shortBurnRate: 0.2, firing: false },
  { alert: 'SLOErrorBudgetBurnSlow', severity: 'ticket', long: '6h', short: '30m', threshold: 6, longBurnRate: 0.3, shortBurnRate: 0.1, firing: false },
  { alert: 'SLOErrorBudgetBurnTrend', severity: 'ticket', long: '3d', short: '6h', threshold: 1, longBurnRate: 0.2, shortBurnRate: 0.2, firing: false },
];

function objective(name: string, budget: number | null): Objective {
  return {
    name,
    kind: 'success',
    objective: 0.99,
    window: '30d',
    current: 0.995,
    errorRatio1h: 0.005,
    burnRates: BURN,
    errorBudgetRemaining: budget,
    ordersLastHour: 1200,
    enoughTraffic: true,
    breaching: budget !== null && budget < 0.25,
  };
}

function history(samplesOf: Record<string, number>): SloHistory {
  const now = Date.now();
  return {
    intervalSeconds: 10,
    burnWindows: ['1h', '6h', '3d'],
    objectives: Object.entries(samplesOf).map(([name, count]) => ({
      name,
      samples: Array.from({ length: count }, (_, i) => ({ atMs: now - (count - i) * 10_000, current: 0.99, errorBudgetRemaining: 0.8 - i * 0.01, burnRates: [1.2, null, 0.1] })),
    })),
  };
}

describe('SloPage', () => {
  let fixture: ComponentFixture<SloPage>;
  let http: HttpTestingController;
  const historyRequest = (): TestRequest => http.expectOne((r) => r.url === '/api/slo/history');

  beforeEach(async () => {
    localStorage.clear();
    TestBed.configureTestingModule({ imports: [SloPage], providers: testProviders() });
    http = TestBed.inject(HttpTestingController);
    fixture = TestBed.createComponent(SloPage);
    http.expectOne('/api/console/settings').flush({ traceUrl: null, grafanaUrl: 'http://grafana:3000' });
    await settle(fixture);
    http.expectOne({ method: 'GET', url: '/api/slo' }).flush({
      source: 'streams-analytics',
      objectives: [objective('order-latency', 0.9), objective('order-success', 0.2), objective('checkout-new', null)],
    });
  });

  afterEach(() => http.verify());

  it('lists the objectives by remaining budget, least first, and links Grafana', async () => {
    historyRequest().flush(history({}));
    await fixture.whenStable();
    const headings = Array.from(root(fixture).querySelectorAll('h2')).map((h) => textOf(h));
    expect(headings).toEqual(['order-success breaching', 'order-latency ok', 'checkout-new ok']);
    expect(textOf(root(fixture).querySelector('[data-testid="slo-budget-order-success"]'))).toBe('20.00%');
    expect(textOf(root(fixture).querySelector('[data-testid="slo-budget-checkout-new"]'))).toBe('no data');
    const burn = root(fixture).querySelector('table[aria-label="Burn rates of order-success"]');
    expect(textOf(burn?.querySelector('tbody tr'))).toBe('SLOErrorBudgetBurnFast (page) 1h / 5m 0.50 / 0.20 14.4× no');
    const grafana = Array.from(root(fixture).querySelectorAll('a')).find((a) => textOf(a) === 'Grafana dashboards');
    expect(grafana?.getAttribute('href')).toBe('http://grafana:3000/dashboards');
  });

  it("charts the server's history of the last hour, and says when an objective has no samples", async () => {
    const request = historyRequest();
    expect(request.request.method).toBe('GET');
    expect(request.request.params.get('minutes')).toBe('60');
    request.flush(history({ 'order-success': 30, 'order-latency': 0 }));
    await fixture.whenStable();
    const section = (name: string) => root(fixture).querySelector(`section[aria-labelledby="slo-${name}"]`)!;
    const canvases = Array.from(section('order-success').querySelectorAll('canvas')).map((c) => c.getAttribute('aria-label'));
    expect(canvases).toEqual([
      'order-success: value against the objective, last 1 h',
      'order-success: error budget left, last 1 h',
      'order-success: burn rates against their alert thresholds, last 1 h',
    ]);
    expect(textOf(section('order-success'))).toContain('1h 1.20 (alert above 14.4), 6h no data (alert above 6), 3d 0.10 (alert above 1)');
    expect(section('order-latency').querySelectorAll('canvas').length).toBe(0);
    expect(textOf(section('order-latency').querySelector('[data-testid="slo-history-order-latency"]'))).toBe('No samples yet in the last 1 h.');
    expect(textOf(section('checkout-new'))).toContain('No samples yet');
  });

  it('asks for the range chosen, and drops an answer for a range no longer chosen', async () => {
    const hour = historyRequest();
    const range = control<HTMLSelectElement>(fixture, 'Range of the charts');
    expect(Array.from(range.options).map((o) => textOf(o))).toEqual(['last 15 min', 'last 1 h', 'last 6 h', 'last 24 h']);
    await fixture.whenStable();
    expect(textOf(range.selectedOptions[0])).toBe('last 1 h');

    choose(range, 'last 6 h');
    const six = historyRequest();
    expect(six.request.params.get('minutes')).toBe('360');
    hour.flush(history({ 'order-success': 5 }));
    await fixture.whenStable();
    expect(root(fixture).querySelectorAll('canvas').length).toBe(0);

    six.flush(history({ 'order-success': 5 }));
    await fixture.whenStable();
    expect(root(fixture).querySelector('canvas')?.getAttribute('aria-label')).toBe('order-success: value against the objective, last 6 h');

    choose(range, 'last 24 h');
    expect(historyRequest().request.params.get('minutes')).toBe('1440');
    choose(range, 'last 15 min');
    expect(historyRequest().request.params.get('minutes')).toBe('15');
  });

  it('redraws the charts when the history or a target changes, not when the view only repeats', async () => {
    historyRequest().flush(history({ 'order-success': 5 }));
    await fixture.whenStable();
    const page = fixture.componentInstance;
    const drawn = page.charts();
    page.objectives.set([objective('order-latency', 0.85), objective('order-success', 0.19), objective('checkout-new', null)]);
    expect(page.charts()).toBe(drawn);
    page.objectives.set([{ ...objective('order-success', 0.19), objective: 0.995 }]);
    expect(page.charts()).not.toBe(drawn);
    expect(page.charts()['order-success'].valueSummary).toContain('against the objective 99.50%');
  });

  it('says why the history could not be read', async () => {
    historyRequest().flush({ error: 'minutes must be 1..=1440' }, { status: 400, statusText: 'Bad Request' });
    await fixture.whenStable();
    expect(textOf(root(fixture).querySelector('[role="alert"]'))).toBe('history: 400: minutes must be 1..=1440');
  });
});
