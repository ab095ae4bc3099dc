// Unit tests of the canary client: the state it reads, the percentage it sets (with the admin
// token), and the step figures it picks out of the analytics windows.
import { HttpTestingController } from '@angular/common/http/testing';
import { TestBed } from '@angular/core/testing';

import { TEST_TOKEN, apiTesting, bearer } from '../testing.spec';
import { CanaryApi, StepFigures } from './canary';

describe('CanaryApi', () => {
  let api: CanaryApi;
  let http: HttpTestingController;

  beforeEach(() => {
    http = apiTesting();
    api = TestBed.inject(CanaryApi);
  });
  afterEach(() => http.verify());

  it('reads the state of the canaries', () => {
    let steps: string[] = [];
    api.state().subscribe((s) => (steps = s.canaries.map((c) => c.step)));
    const request = http.expectOne('/api/runtime/canary');
    expect(request.request.method).toBe('GET');
    request.flush({ canaries: [{ step: 'payment' }] });
    expect(steps).toEqual(['payment']);
  });

  it('sets a percentage with its reason, as an admin', () => {
    api.set('payment', 30, 'ramp up').subscribe();
    const request = http.expectOne('/api/chaos/canary');
    expect(request.request.method).toBe('PUT');
    expect(request.request.body).toEqual({ step: 'payment', percent: 30, reason: 'ramp up' });
    expect(bearer(request)).toBe(`Bearer ${TEST_TOKEN}`);
    request.flush({});
  });

  it("gives the steps of the 5-minute window, and none when it is missing", () => {
    const figures = [{ step: 'payment', variant: 'canary' }] as StepFigures[];
    let got: StepFigures[] | null = null;
    api.steps().subscribe((s) => (got = s));
    const request = http.expectOne('/api/analytics/windows');
    expect(request.request.method).toBe('GET');
    request.flush({ '1m': { steps: [] }, '5m': { steps: figures } });
    expect(got!).toEqual(figures);

    let empty: StepFigures[] | null = null;
    api.steps().subscribe((s) => (empty = s));
    http.expectOne('/api/analytics/windows').flush({ '1m': {} });
    expect(empty!).toEqual([]);
  });

  it('passes a failure of the windows on', () => {
    let failed = false;
    api.steps().subscribe({ error: () => (failed = true) });
    http.expectOne('/api/analytics/windows').flush({ error: 'down' }, { status: 503, statusText: 'Unavailable' });
    expect(failed).toBeTrue();
  });
});
