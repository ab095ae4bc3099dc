// Unit tests of the dead-letters page: topics and entries shown, filters sent as query
// parameters, paging by cursor, and a bulk action only after its dry run was shown.
import { HttpTestingController, TestRequest } from '@angular/common/http/testing';
import { ComponentFixture, TestBed } from '@angular/core/testing';

import { DeadLetterSummary } from '../api/dead-letters';
import { button, choose, control, root, rows, settle, testProviders, textOf, typeInto } from '../testing.spec';
import { DeadLettersPage } from './dead-letters-page';

function summary(id: number, overrides: Partial<DeadLetterSummary> = {}): DeadLetterSummary {
  return {
    id,
    topic: 'payment.requested.dlq',
    key: `order-${id}-0000-0000`,
    errorKind: 'handler_failed',
    errorMessage: 'gateway down',
    state: 'new',
    replayCount: 0,
    deadLetteredAtMs: 1_733_500_000_000,
    ...overrides,
  };
}

describe('DeadLettersPage', () => {
  let fixture: ComponentFixture<DeadLettersPage>;
  let http: HttpTestingController;

  /** Answers one round of the page's reads; the entries' request is handed back. */
  function answerRound(entries: DeadLetterSummary[], nextCursor: string | null = null): TestRequest {
    http.expectOne({ method: 'GET', url: '/api/dlq/topics' }).flush({
      topics: [{ topic: 'payment.requested.dlq', originalTopics: ['payment.requested'], total: 3, byState: { new: 2, replayed: 1 }, byKind: { handler_failed: 3 } }],
    });
    const request = http.expectOne((r) => r.url === '/api/dlq/entries');
    request.flush({ entries, nextCursor });
    http.expectOne({ method: 'GET', url: '/api/dlq/audit?limit=20' }).flush({
      audit: [{ seq: 1, actor: 'admin', action: 'replay', target: 'entry 4', outcome: 'sent', atMs: 1_733_500_000_000 }],
    });
    return request;
  }

  beforeEach(async () => {
    TestBed.configureTestingModule({ imports: [DeadLettersPage], providers: testProviders() });
    http = TestBed.inject(HttpTestingController);
    fixture = TestBed.createComponent(DeadLettersPage);
    await settle(fixture);
  });

  afterEach(() => http.verify());

  it('lists the topics with their counts, the entries and the audit trail', async () => {
    const first = answerRound([summary(1), summary(2, { errorKind: 'schema_invalid', state: 'replayed' })], 'c2');
    expect(first.request.params.keys()).toEqual(['limit']);
    await fixture.whenStable();
    expect(rows(fixture, 'Dead-letter topics')).toEqual([['payment.requested.dlq', '3', 'new 2, replayed 1', 'handler_failed 3']]);
    const entries = rows(fixture, 'Dead-letter entries');
    expect(entries.map((r) => [r[0], r[2], r[3], r[4]])).toEqual([
      ['#1', 'handler_failed', 'new', 'order-1-'],
      ['#2', 'schema_invalid', 'replayed', 'order-2-'],
    ]);
    expect(rows(fixture, 'Audit trail')[0].slice(1)).toEqual(['admin', 'replay', 'entry 4', 'sent']);
  });

  it('sends each filter as a query parameter and starts again from the newest page', async () => {
    answerRound([summary(1)], 'c2');
    await fixture.whenStable();
    button(fixture, 'Older').click();
    expect(answerRound([summary(9)]).request.params.get('cursor')).toBe('c2');
    await fixture.whenStable();

    choose(control<HTMLSelectElement>(fixture, 'Kind'), 'schema_invalid');
    let request = answerRound([]);
    expect(request.request.params.get('kind')).toBe('schema_invalid');
    expect(request.request.params.has('cursor')).toBeFalse();

    choose(control<HTMLSelectElement>(fixture, 'State'), 'new');
    request = answerRound([]);
    expect(request.request.params.get('state')).toBe('new');
    expect(request.request.params.get('kind')).toBe('schema_invalid');

    typeInto(control(fixture, 'Text in key or payload'), 'o-42');
    request = answerRound([]);
    expect(request.request.params.get('q')).toBe('o-42');

    typeInto(control(fixture, 'From'), '2024-12-06T10:00');
    request = answerRound([]);
    expect(request.request.params.get('from')).toBe(String(new Date('2024-12-06T10:00').getTime()));
    await fixture.whenStable();
    expect(textOf(root(fixture).querySelector('table[aria-label="Dead-letter entries"] tbody'))).toBe('No entry matches.');
  });

  it('shows what a bulk replay would do before doing it, then does it', async () => {
    answerRound([summary(1), summary(2)]);
    await fixture.whenStable();
    choose(control<HTMLSelectElement>(fixture, 'Topic'), 'payment.requested.dlq');
    answerRound([summary(1), summary(2)]);

    button(fixture, 'Preview replay').click();
    const dry = http.expectOne({ method: 'POST', url: '/api/dlq/replay' });
    expect(dry.request.body).toEqual({ dryRun: true, topic: 'payment.requested.dlq' });
    dry.flush({ matched: 3, wouldSend: [1, 2] });
    await fixture.whenStable();
    expect(textOf(root(fixture).querySelector('.bulk [role="status"]'))).toBe('replay: 2 of 3 matching entries would be sent back.');
    // Nothing is replayed until the user confirms.
    http.expectNone({ method: 'POST', url: '/api/dlq/replay' });

    button(fixture, 'Replay 2').click();
    const real = http.expectOne({ method: 'POST', url: '/api/dlq/replay' });
    expect(real.request.body).toEqual({ dryRun: false, topic: 'payment.requested.dlq' });
    real.flush({ sent: [1, 2] });
    answerRound([]);
    await fixture.whenStable();
    expect(textOf(root(fixture).querySelector('.bulk [role="status"]'))).toBe('2 replayed.');
  });

  it('offers no bulk discard when the dry run finds nothing, and drops a preview when the filter changes', async () => {
    answerRound([]);
    button(fixture, 'Preview discard').click();
    const dry = http.expectOne({ method: 'POST', url: '/api/dlq/discard' });
    expect(dry.request.body).toEqual({ dryRun: true, reason: 'discarded from the console' });
    dry.flush({ matched: 0, wouldDiscard: [] });
    await fixture.whenStable();
    expect(button(fixture, 'Discard 0').disabled).toBeTrue();
    choose(control<HTMLSelectElement>(fixture, 'Kind'), 'rejected');
    answerRound([]);
    await fixture.whenStable();
    expect(root(fixture).querySelector('.bulk [role="status"]')).toBeNull();
  });
});
