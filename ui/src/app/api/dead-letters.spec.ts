// Unit tests of the dlq-admin client: filters as query parameters, replay and discard bodies,
// bulk dry runs, and the admin token on every change.
import { HttpTestingController } from '@angular/common/http/testing';
import { TestBed } from '@angular/core/testing';

import { TEST_TOKEN, apiTesting, bearer } from '../testing.spec';
import { DeadLettersApi } from './dead-letters';

describe('DeadLettersApi', () => {
  let api: DeadLettersApi;
  let http: HttpTestingController;

  beforeEach(() => {
    http = apiTesting();
    api = TestBed.inject(DeadLettersApi);
  });
  afterEach(() => http.verify());

  it('reads topics, one entry (escaped) and the audit trail', () => {
    api.topics().subscribe();
    http.expectOne({ method: 'GET', url: '/api/dlq/topics' }).flush({ topics: [] });
    api.entry('7/x').subscribe();
    http.expectOne({ method: 'GET', url: '/api/dlq/entries/7%2Fx' }).flush({});
    api.audit().subscribe();
    http.expectOne({ method: 'GET', url: '/api/dlq/audit?limit=20' }).flush({ audit: [] });
  });

  it('sends only the filters that are set, times as Unix ms', () => {
    api.entries({ topic: 'payment.requested.dlq', kind: 'schema_invalid', state: 'new', q: 'o-1', from: 1000, to: 2000, cursor: 'c9' }).subscribe();
    const full = http.expectOne((r) => r.url === '/api/dlq/entries');
    expect(full.request.method).toBe('GET');
    const params = full.request.params;
    expect(params.keys().sort()).toEqual(['cursor', 'from', 'kind', 'limit', 'q', 'state', 'to', 'topic']);
    expect([params.get('topic'), params.get('kind'), params.get('state'), params.get('q')]).toEqual(['payment.requested.dlq', 'schema_invalid', 'new', 'o-1']);
    expect([params.get('from'), params.get('to'), params.get('cursor'), params.get('limit')]).toEqual(['1000', '2000', 'c9', '25']);
    full.flush({ entries: [], nextCursor: null });

    api.entries({ topic: '', kind: '', state: '', q: '', from: null, to: null, cursor: null }).subscribe();
    const plain = http.expectOne((r) => r.url === '/api/dlq/entries');
    expect(plain.request.params.keys()).toEqual(['limit']);
    plain.flush({ entries: [], nextCursor: null });
  });

  it('replays as is (no body) or with an edited payload', () => {
    api.replay(7).subscribe();
    const asIs = http.expectOne({ method: 'POST', url: '/api/dlq/entries/7/replay' });
    expect(asIs.request.body).toBeNull();
    expect(bearer(asIs)).toBe(`Bearer ${TEST_TOKEN}`);
    asIs.flush({});

    api.replay(7, { orderId: 'o-1', amount: 0 }).subscribe();
    const edited = http.expectOne({ method: 'POST', url: '/api/dlq/entries/7/replay' });
    expect(edited.request.body).toEqual({ payload: { orderId: 'o-1', amount: 0 } });
    edited.flush({});

    api.replay(7, null).subscribe();
    expect(http.expectOne('/api/dlq/entries/7/replay').request.body).toEqual({ payload: null });
  });

  it('discards with a reason', () => {
    api.discard(7, 'poison').subscribe();
    const request = http.expectOne({ method: 'POST', url: '/api/dlq/entries/7/discard' });
    expect(request.request.body).toEqual({ reason: 'poison' });
    expect(bearer(request)).toBe(`Bearer ${TEST_TOKEN}`);
    request.flush({});
  });

  it('acts in bulk on what the filter selects, dry run or for real', () => {
    api.bulk('replay', { topic: 't.dlq', kind: '', state: 'new', q: '', from: 5, to: null, cursor: 'ignored' }, true).subscribe();
    const dry = http.expectOne({ method: 'POST', url: '/api/dlq/replay' });
    expect(dry.request.body).toEqual({ dryRun: true, topic: 't.dlq', state: 'new', from: 5 });
    expect(bearer(dry)).toBe(`Bearer ${TEST_TOKEN}`);
    dry.flush({ matched: 1, wouldSend: [1] });

    api.bulk('discard', { kind: 'rejected' }, false).subscribe();
    const real = http.expectOne({ method: 'POST', url: '/api/dlq/discard' });
    expect(real.request.body).toEqual({ dryRun: false, kind: 'rejected', reason: 'discarded from the console' });
    real.flush({ discarded: [] });

    api.bulk('discard', {}, false, 'bad batch').subscribe();
    expect(http.expectOne('/api/dlq/discard').request.body).toEqual({ dryRun: false, reason: 'bad batch' });
  });
});
