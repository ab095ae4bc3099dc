// Unit tests of the admin token: kept for the session only, sent on changes, never on reads.
import { HttpClient } from '@angular/common/http';
import { HttpTestingController } from '@angular/common/http/testing';
import { TestBed } from '@angular/core/testing';

import { TEST_TOKEN, apiTesting, bearer } from '../testing.spec';
import { AdminToken } from './admin-token';

describe('AdminToken', () => {
  let http: HttpTestingController;

  beforeEach(() => (http = apiTesting()));
  afterEach(() => {
    http.verify();
    sessionStorage.clear();
  });

  it('is kept trimmed in sessionStorage, and forgotten when emptied', () => {
    const token = TestBed.inject(AdminToken);
    token.set('  abc  ');
    expect(token.value()).toBe('abc');
    expect(sessionStorage.getItem('chaos-symphony.admin-token')).toBe('abc');
    token.set(' ');
    expect(token.value()).toBe('');
    expect(sessionStorage.getItem('chaos-symphony.admin-token')).toBeNull();
    expect(localStorage.getItem('chaos-symphony.admin-token')).toBeNull();
  });

  it('goes with every call that changes something and with no read', () => {
    const client = TestBed.inject(HttpClient);
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
      client.request(method, '/api/x', { body: {} }).subscribe();
      const request = http.expectOne({ method, url: '/api/x' });
      expect(bearer(request)).withContext(method).toBe(`Bearer ${TEST_TOKEN}`);
      request.flush({});
    }
    client.get('/api/x').subscribe();
    const read = http.expectOne({ method: 'GET', url: '/api/x' });
    expect(read.request.headers.has('Authorization')).toBeFalse();
    read.flush({});
  });

  it('is not sent when none is set', () => {
    TestBed.inject(AdminToken).set('');
    TestBed.inject(HttpClient).post('/api/x', {}).subscribe();
    const request = http.expectOne('/api/x');
    expect(request.request.headers.has('Authorization')).toBeFalse();
    request.flush({});
  });
});
