// Unit tests of the gameday-svc client: scenarios and runs read, a run started with its
// scenario and aborted (with the admin token), the report's address.
import { HttpTestingController } from '@angular/common/http/testing';
import { TestBed } from '@angular/core/testing';

import { TEST_TOKEN, apiTesting, bearer } from '../testing.spec';
import { GamedaysApi } from './gamedays';

describe('GamedaysApi', () => {
  let api: GamedaysApi;
  let http: HttpTestingController;

  beforeEach(() => {
    http = apiTesting();
    api = TestBed.inject(GamedaysApi);
  });
  afterEach(() => http.verify());

  it('reads scenarios, the last runs and one run', () => {
    api.scenarios().subscribe();
    http.expectOne({ method: 'GET', url: '/api/gamedays/scenarios' }).flush({ scenarios: [] });
    api.runs().subscribe();
    http.expectOne({ method: 'GET', url: '/api/gamedays/runs?limit=50' }).flush({ runs: [] });
    api.run('a/b').subscribe();
    const one = http.expectOne({ method: 'GET', url: '/api/gamedays/runs/a%2Fb' });
    expect(bearer(one)).toBe('');
    one.flush({});
  });

  it('starts a run of a scenario and aborts it', () => {
    api.start('checkout-storm').subscribe();
    const start = http.expectOne({ method: 'POST', url: '/api/gamedays/runs' });
    expect(start.request.body).toEqual({ scenario: 'checkout-storm' });
    expect(bearer(start)).toBe(`Bearer ${TEST_TOKEN}`);
    start.flush({ id: 'r1' }, { status: 201, statusText: 'Created' });

    api.abort('r1').subscribe();
    const abort = http.expectOne({ method: 'POST', url: '/api/gamedays/runs/r1/abort' });
    expect(abort.request.body).toBeNull();
    expect(bearer(abort)).toBe(`Bearer ${TEST_TOKEN}`);
    abort.flush({});
  });

  it("names a run's report", () => {
    expect(api.reportUrl('r 1')).toBe('/api/gamedays/runs/r%201/report');
  });
});
