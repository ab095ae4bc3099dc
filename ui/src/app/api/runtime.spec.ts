// Unit tests of the runner's own routes: configs, the relay, readiness (a 503 carries the report).
import { HttpErrorResponse } from '@angular/common/http';
import { HttpTestingController } from '@angular/common/http/testing';
import { TestBed } from '@angular/core/testing';

import { apiTesting } from '../testing.spec';
import { Readiness, RuntimeApi } from './runtime';

describe('RuntimeApi', () => {
  let api: RuntimeApi;
  let http: HttpTestingController;

  beforeEach(() => {
    http = apiTesting();
    api = TestBed.inject(RuntimeApi);
  });
  afterEach(() => http.verify());

  it('reads the configs and the relay', () => {
    api.config().subscribe();
    http.expectOne({ method: 'GET', url: '/api/runtime/config' }).flush({ services: [] });
    api.relay().subscribe();
    http.expectOne({ method: 'GET', url: '/api/relay/status' }).flush({});
  });

  it('reads readiness, whose report also comes with a 503', () => {
    let failure: HttpErrorResponse | null = null;
    api.readiness().subscribe({ error: (e: HttpErrorResponse) => (failure = e) });
    const body = { ready: false, database: true, broker: false, partsDown: ['relay'], parts: {} };
    http.expectOne({ method: 'GET', url: '/readyz' }).flush(body, { status: 503, statusText: 'Service Unavailable' });
    expect(failure!.status).toBe(503);
    expect((failure!.error as Readiness).partsDown).toEqual(['relay']);
  });
});
