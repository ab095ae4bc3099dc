// Unit tests of the canary page: the percentage in force and the decisions listed, a new
// percentage sent with its reason and shown once the API has it, refusals shown.
import { HttpTestingController } from '@angular/common/http/testing';
import { ComponentFixture, TestBed } from '@angular/core/testing';

import { CanaryState } from '../api/canary';
import { button, control, root, rows, settle, testProviders, textOf, typeInto } from '../testing.spec';
import { CanaryPage } from './canary-page';

function state(percent: number, events: CanaryState['events']): CanaryState {
  return {
    service: 'payment-svc',
    step: 'payment',
    topic: 'payment.requested.canary',
    percent,
    phase: 'holding',
    setBy: 'admin',
    setAtMs: 1_733_500_000_000,
    outcomes: { stable: { success: 90, failure: 1 }, canary: { success: 9, failure: 2 } },
    events,
  };
}

describe('CanaryPage', () => {
  let fixture: ComponentFixture<CanaryPage>;
  let http: HttpTestingController;
  const decision = { atMs: 1_733_500_000_000, kind: 'manual', from: 0, to: 10, by: 'admin', reason: 'first slice' };

  beforeEach(async () => {
    TestBed.configureTestingModule({ imports: [CanaryPage], providers: testProviders() });
    http = TestBed.inject(HttpTestingController);
    fixture = TestBed.createComponent(CanaryPage);
    await settle(fixture);
    http.expectOne({ method: 'GET', url: '/api/runtime/canary' }).flush({ canaries: [state(10, [decision])] });
    http.expectOne({ method: 'GET', url: '/api/analytics/windows' }).flush({
      '5m': {
        steps: [
          { step: 'payment', variant: 'stable', outcomes: { success: 90, failure: 1, no_reply: 0 }, failureRatio: 0.01, latencyMs: { p50: 12, p95: 30, p99: 41, count: 91 } },
          { step: 'payment', variant: 'canary', outcomes: { success: 9, failure: 2, no_reply: 0 }, failureRatio: 0.18, latencyMs: { p50: 15, p95: 50, p99: 80, count: 11 } },
        ],
      },
    });
    await fixture.whenStable();
  });

  afterEach(() => http.verify());

  it('shows the percentage in force, the figures by variant and the decisions', () => {
    expect(textOf(root(fixture).querySelector('h2'))).toBe('Step payment (payment-svc)');
    expect(textOf(root(fixture).querySelector('[data-testid="canary-percent"]'))).toBe('10%');
    expect(rows(fixture, 'Canary decisions').map((r) => r.slice(1))).toEqual([['0% → 10%', 'admin', 'first slice']]);
    expect(root(fixture).querySelectorAll('canvas').length).toBe(2);
    expect(textOf(root(fixture))).toContain('stable 90 ok / 1 failed; canary 9 ok / 2 failed');
    expect(textOf(root(fixture))).toContain('canary: p50 15 ms, p99 80 ms, 18% failed of 11');
  });

  it('sends a new percentage with its reason and shows it once set', async () => {
    typeInto(control(fixture, 'New percentage'), '30');
    typeInto(control(fixture, 'Reason'), 'ramp up');
    button(fixture, 'Set').click();
    const put = http.expectOne({ method: 'PUT', url: '/api/chaos/canary' });
    expect(put.request.body).toEqual({ step: 'payment', percent: 30, reason: 'ramp up' });
    put.flush({});
    http.expectOne('/api/runtime/canary').flush({ canaries: [state(30, [decision, { ...decision, from: 10, to: 30, reason: 'ramp up' }])] });
    await fixture.whenStable();
    expect(textOf(root(fixture).querySelector('[data-testid="canary-percent"]'))).toBe('30%');
    expect(rows(fixture, 'Canary decisions').map((r) => r[1])).toEqual(['0% → 10%', '10% → 30%']);
  });

  it('says why a percentage was refused', async () => {
    typeInto(control(fixture, 'New percentage'), '100');
    button(fixture, 'Set').click();
    const put = http.expectOne('/api/chaos/canary');
    expect(put.request.body.reason).toBe('set from the console');
    put.flush({ error: 'an analysis lease holds the percentage' }, { status: 409, statusText: 'Conflict' });
    await fixture.whenStable();
    expect(textOf(root(fixture).querySelector('[role="alert"]'))).toBe('409: an analysis lease holds the percentage');
    expect(textOf(root(fixture).querySelector('[data-testid="canary-percent"]'))).toBe('10%');
  });

  it('says when no saga has a canary step', async () => {
    fixture.destroy();
    fixture = TestBed.createComponent(CanaryPage);
    await settle(fixture);
    http.expectOne('/api/runtime/canary').flush({ canaries: [] });
    http.expectOne('/api/analytics/windows').flush({});
    await fixture.whenStable();
    expect(textOf(root(fixture))).toContain('No saga here has a canary step.');
  });
});
