// Unit tests of the SLO client: the view, and the history's `minutes` kept within 1..=1440.
import { HttpTestingController } from '@angular/common/http/testing';
import { TestBed } from '@angular/core/testing';

import { apiTesting } from '../testing.spec';
import { SloApi } from './slo';

describe('SloApi', () => {
  let api: SloApi;
  let http: HttpTestingController;

  beforeEach(() => {
    http = apiTesting();
    api = TestBed.inject(SloApi);
  });
  afterEach(() => http.verify());

  it('reads the view', () => {
    api.view().subscribe();
    http.expectOne({ method: 'GET', url: '/api/slo' }).flush({ source: 'x', objectives: [] });
  });

  it('asks for the history of a number of minutes, within what the API takes', () => {
    const cases: [number, string][] = [
      [15, '15'],
      [1440, '1440'],
      [0, '1'],
      [5000, '1440'],
      [59.6, '60'],
      [Number.NaN, '60'],
    ];
    for (const [minutes, sent] of cases) {
      api.history(minutes).subscribe();
      const request = http.expectOne((r) => r.url === '/api/slo/history');
      expect(request.request.method).toBe('GET');
      expect(request.request.params.keys()).toEqual(['minutes']);
      expect(request.request.params.get('minutes')).withContext(String(minutes)).toBe(sent);
      request.flush({ intervalSeconds: 10, burnWindows: [], objectives: [] });
    }
  });
});
