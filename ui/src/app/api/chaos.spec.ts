// Unit tests of the chaos-svc client: each call's method, path (ids escaped), query and body,
// and the admin token on every change.
import { HttpTestingController } from '@angular/common/http/testing';
import { TestBed } from '@angular/core/testing';

import { TEST_TOKEN, apiTesting, bearer } from '../testing.spec';
import { ChaosApi, RuleSpec } from './chaos';

describe('ChaosApi', () => {
  let api: ChaosApi;
  let http: HttpTestingController;
  const rule: RuleSpec = { id: 'slow/pay', target: { kind: 'handler', handler: 'payment.charge' }, fault: { kind: 'latency', fixed: '1s' }, ttl: '10m' };

  beforeEach(() => {
    http = apiTesting();
    api = TestBed.inject(ChaosApi);
  });
  afterEach(() => http.verify());

  it('lists the rules, openly', () => {
    api.rules().subscribe();
    const request = http.expectOne('/api/chaos/rules');
    expect(request.request.method).toBe('GET');
    expect(bearer(request)).toBe('');
    request.flush({ rules: [] });
  });

  it('creates with POST and updates with PUT at the escaped id', () => {
    api.create(rule).subscribe();
    const created = http.expectOne({ method: 'POST', url: '/api/chaos/rules' });
    expect(created.request.body).toEqual(rule);
    expect(bearer(created)).toBe(`Bearer ${TEST_TOKEN}`);
    created.flush(rule, { status: 201, statusText: 'Created' });

    api.update(rule).subscribe();
    const updated = http.expectOne({ method: 'PUT', url: '/api/chaos/rules/slow%2Fpay' });
    expect(updated.request.body).toEqual(rule);
    expect(bearer(updated)).toBe(`Bearer ${TEST_TOKEN}`);
    updated.flush(rule);
  });

  it('deletes, enables and disables a rule', () => {
    api.remove('slow/pay').subscribe();
    const removed = http.expectOne({ method: 'DELETE', url: '/api/chaos/rules/slow%2Fpay' });
    expect(bearer(removed)).toBe(`Bearer ${TEST_TOKEN}`);
    removed.flush(null, { status: 204, statusText: 'No Content' });

    api.switch('r1', true).subscribe();
    const on = http.expectOne({ method: 'POST', url: '/api/chaos/rules/r1/enable' });
    expect(on.request.body).toBeNull();
    expect(bearer(on)).toBe(`Bearer ${TEST_TOKEN}`);
    on.flush({});

    api.switch('r1', false).subscribe();
    http.expectOne({ method: 'POST', url: '/api/chaos/rules/r1/disable' }).flush({});
  });

  it("asks for the newest injections, optionally one order's", () => {
    api.injections().subscribe();
    http.expectOne({ method: 'GET', url: '/api/chaos/injections?limit=50' }).flush({ injections: [] });
    api.injections(200, 'o 1&x').subscribe();
    http.expectOne({ method: 'GET', url: '/api/chaos/injections?limit=200&key=o%201%26x' }).flush({ injections: [] });
  });
});
