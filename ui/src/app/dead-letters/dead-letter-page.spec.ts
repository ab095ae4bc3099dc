// Unit tests of one dead letter's page: the payload's schema problems shown at their lines
// (gutter marks, a list of buttons that select the line), JSON mistakes caught before sending,
// and replay and discard calls.
import { HttpTestingController } from '@angular/common/http/testing';
import { ComponentFixture, TestBed } from '@angular/core/testing';

import { DeadLetter } from '../api/dead-letters';
import { button, root, settle, testProviders, textOf, typeInto } from '../testing.spec';
import { DeadLetterPage, payloadPointer } from './dead-letter-page';

const PAYLOAD = { orderId: 'o-1', amount: 5, items: [{ sku: 'SKU-1', quantity: 1 }] };

function entry(overrides: Partial<DeadLetter> = {}): DeadLetter {
  return {
    id: 7,
    topic: 'payment.requested.dlq',
    originalTopic: 'payment.requested',
    key: 'o-1',
    errorKind: 'schema_invalid',
    errorMessage: 'amount: must be positive',
    attempts: 1,
    state: 'new',
    replayCount: 0,
    deadLetteredAtMs: 1_733_500_000_000,
    payload: PAYLOAD,
    payloadEncoding: 'json',
    headers: [{ name: 'dlq_error_kind', value: 'schema_invalid' }],
    history: [],
    replay: { allowed: true },
    ...overrides,
  };
}

describe('DeadLetterPage', () => {
  let fixture: ComponentFixture<DeadLetterPage>;
  let http: HttpTestingController;

  const editor = () => root(fixture).querySelector('textarea') as HTMLTextAreaElement;
  const problemButtons = () => Array.from(root(fixture).querySelectorAll('#payload-problems button')) as HTMLButtonElement[];
  const markedLines = () => Array.from(root(fixture).querySelectorAll('[data-testid="gutter"] .bad')).map((e) => textOf(e));

  beforeEach(async () => {
    TestBed.configureTestingModule({ imports: [DeadLetterPage], providers: testProviders() });
    http = TestBed.inject(HttpTestingController);
    fixture = TestBed.createComponent(DeadLetterPage);
    fixture.componentRef.setInput('id', '7');
    await settle(fixture);
    http.expectOne({ method: 'GET', url: '/api/dlq/entries/7' }).flush(entry());
    await fixture.whenStable();
  });

  afterEach(() => http.verify());

  it('shows the payload pretty-printed with a line number per line, and nothing marked', () => {
    expect(editor().value).toBe(JSON.stringify(PAYLOAD, null, 2));
    const gutter = root(fixture).querySelector('[data-testid="gutter"]')!;
    expect(gutter.getAttribute('aria-hidden')).toBe('true');
    expect(gutter.children.length).toBe(editor().value.split('\n').length);
    expect(editor().hasAttribute('aria-invalid')).toBeFalse();
    expect(editor().hasAttribute('aria-describedby')).toBeFalse();
    expect(root(fixture).querySelector('label[for="payload-editor"]')).not.toBeNull();
    expect(editor().id).toBe('payload-editor');
  });

  it('places each schema problem at its line of the draft and lets the user go there', async () => {
    // Edited by hand, not as printed: the lines come from the text itself.
    const edited = '{\n  "orderId": "o-1",\n  "items": [\n    {"quantity": 1,\n     "sku": 42}\n  ],\n  "amount": -3\n}';
    typeInto(editor(), edited);
    await fixture.whenStable();
    button(fixture, 'Replay').click();
    const replay = http.expectOne({ method: 'POST', url: '/api/dlq/entries/7/replay' });
    expect(replay.request.body).toEqual({ payload: JSON.parse(edited) });
    replay.flush(
      {
        error: 'the payload does not match payment.requested v1',
        fields: [
          { field: 'payload/amount', message: '-3 is less than the minimum of 0' },
          { field: 'payload/items/0/sku', message: "42 is not of type 'string'" },
          { field: 'payload', message: '"customerId" is a required property' },
          { field: 'payload/shipTo/country', message: 'is required' },
          { field: 'reason', message: 'too long' },
        ],
      },
      { status: 422, statusText: 'Unprocessable Entity' },
    );
    await fixture.whenStable();

    const alert = root(fixture).querySelector('[role="alert"]');
    expect(textOf(alert)).toContain('422: the payload does not match payment.requested v1');
    expect(textOf(alert)).toContain('reason: too long');
    expect(textOf(alert)).not.toContain('-3 is less than');

    expect(problemButtons().map((b) => textOf(b))).toEqual([
      'line 7 · /amount: -3 is less than the minimum of 0',
      "line 5 · /items/0/sku: 42 is not of type 'string'",
      'line 1 · payload: "customerId" is a required property',
      'whole payload · /shipTo/country: is required',
    ]);
    expect(markedLines()).toEqual(['1', '5', '7']);
    expect(editor().getAttribute('aria-invalid')).toBe('true');
    const describedBy = editor().getAttribute('aria-describedby')!;
    expect(textOf(root(fixture).querySelector(`#${describedBy}`))).toContain('/amount: -3 is less than the minimum of 0');

    problemButtons()[1].click();
    expect(document.activeElement).toBe(editor());
    expect(editor().value.slice(editor().selectionStart, editor().selectionEnd)).toBe('     "sku": 42}');
    problemButtons()[0].click();
    expect(editor().value.slice(editor().selectionStart, editor().selectionEnd)).toBe('  "amount": -3');

    // Lines follow further edits; the problems stay until the next replay.
    typeInto(editor(), '\n\n' + editor().value);
    await fixture.whenStable();
    expect(textOf(problemButtons()[0])).toBe('line 9 · /amount: -3 is less than the minimum of 0');
    expect(markedLines()).toEqual(['3', '7', '9']);
  });

  it('keeps the gutter scrolled with the editor', async () => {
    typeInto(editor(), Array.from({ length: 200 }, (_, i) => `"line ${i}"`).join('\n'));
    await fixture.whenStable();
    editor().scrollTop = 300;
    editor().dispatchEvent(new Event('scroll'));
    const gutter = root(fixture).querySelector('[data-testid="gutter"]') as HTMLElement;
    expect(editor().scrollTop).toBeGreaterThan(0);
    expect(gutter.scrollTop).toBe(editor().scrollTop);
  });

  it('refuses text that is not JSON before sending, pointing at its line', async () => {
    typeInto(editor(), '{\n  "orderId": "o-1"\n  "amount": 5\n}');
    await fixture.whenStable();
    button(fixture, 'Replay').click();
    await fixture.whenStable();
    http.expectNone('/api/dlq/entries/7/replay');
    expect(textOf(root(fixture).querySelector('[role="alert"]'))).toContain('the payload is not JSON (line 3)');
    expect(problemButtons().length).toBe(1);
    expect(textOf(problemButtons()[0])).toMatch(/^line 3 · not JSON: /);
    expect(markedLines()).toEqual(['3']);
    expect(editor().getAttribute('aria-invalid')).toBe('true');
  });

  it('replays an unedited entry as is and clears the problems after a success', async () => {
    button(fixture, 'Replay').click();
    const replay = http.expectOne({ method: 'POST', url: '/api/dlq/entries/7/replay' });
    expect(replay.request.body).toBeNull();
    replay.flush({});
    http.expectOne('/api/dlq/entries/7').flush(entry({ state: 'replayed', replayCount: 1 }));
    await fixture.whenStable();
    expect(textOf(root(fixture).querySelector('[role="status"]'))).toBe('Replayed.');
    expect(textOf(root(fixture).querySelector('[data-testid="entry-state"]'))).toBe('replayed');
    expect(root(fixture).querySelector('#payload-problems')).toBeNull();
  });

  it('discards with the reason given', async () => {
    typeInto(root(fixture).querySelector('input[name="reason"]') as HTMLInputElement, 'poison message');
    button(fixture, 'Discard').click();
    const discard = http.expectOne({ method: 'POST', url: '/api/dlq/entries/7/discard' });
    expect(discard.request.body).toEqual({ reason: 'poison message' });
    discard.flush({});
    http.expectOne('/api/dlq/entries/7').flush(entry({ state: 'discarded' }));
    await fixture.whenStable();
    expect(textOf(root(fixture).querySelector('[role="status"]'))).toBe('Discarded.');
    expect(button(fixture, 'Discard').disabled).toBeTrue();
  });
});

describe('payloadPointer', () => {
  it("reads the pointer inside the payload from a problem's field", () => {
    expect(payloadPointer('payload')).toBe('');
    expect(payloadPointer('payload/amount')).toBe('/amount');
    expect(payloadPointer('payload/a~1b/0')).toBe('/a~1b/0');
    expect(payloadPointer('payloads')).toBeNull();
    expect(payloadPointer('reason')).toBeNull();
  });
});
