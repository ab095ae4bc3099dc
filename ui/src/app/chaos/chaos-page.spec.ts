// Unit tests of the chaos page: rules listed with their source, state and lease left, actions
// only on API rules, delete and enable/disable calls, injections listed.
import { HttpTestingController } from '@angular/common/http/testing';
import { ComponentFixture, TestBed } from '@angular/core/testing';

import { RuleView } from '../api/chaos';
import { AdminToken } from '../api/admin-token';
import { TEST_TOKEN, bearer, button, hasButton, root, rows, settle, testProviders, textOf } from '../testing.spec';
import { ChaosPage } from './chaos-page';

function view(id: string, overrides: Partial<RuleView> = {}, enabled = true): RuleView {
  return {
    id,
    source: 'api',
    state: 'active',
    count: 3,
    activatedAtMs: Date.now() - 1000,
    expiresAtMs: null,
    rule: { id, target: { kind: 'handler', handler: 'payment.charge' }, fault: { kind: 'error', message: 'boom' }, key_sample: 0.25, enabled },
    ...overrides,
  };
}

describe('ChaosPage', () => {
  let fixture: ComponentFixture<ChaosPage>;
  let http: HttpTestingController;

  function answer(rules: RuleView[]): void {
    http.expectOne({ method: 'GET', url: '/api/chaos/rules' }).flush({ rules });
    http.expectOne({ method: 'GET', url: '/api/chaos/injections?limit=50' }).flush({
      injections: [{ at: '', atMs: 1_733_500_000_000, rule: 'flaky', fault: 'error', service: 'payment-svc', target: 'payment.charge', key: 'abcdef12-3456', detail: 'boom' }],
    });
  }

  beforeEach(async () => {
    sessionStorage.clear();
    TestBed.configureTestingModule({ imports: [ChaosPage], providers: testProviders() });
    TestBed.inject(AdminToken).set(TEST_TOKEN);
    http = TestBed.inject(HttpTestingController);
    fixture = TestBed.createComponent(ChaosPage);
    await settle(fixture);
    answer([
      view('flaky', { expiresAtMs: Date.now() + 125_000 }),
      view('paused', { state: 'disabled' }, false),
      view('from-file', { source: { kind: 'file', service: 'payment-svc' }, expiresAtMs: Date.now() - 60_000 }),
    ]);
    await fixture.whenStable();
  });

  afterEach(() => {
    http.verify();
    sessionStorage.clear();
  });

  it('lists each rule with its source, state, what it breaks and the lease left', () => {
    const table = rows(fixture, 'Chaos rules');
    expect(table.map((r) => r.slice(0, 6))).toEqual([
      ['flaky', 'api', 'active', 'handler handler=payment.charge → error message=boom, 25% of orders', '2 min 5 s', '3'],
      ['paused', 'api', 'disabled', 'handler handler=payment.charge → error message=boom, 25% of orders', 'none', '3'],
      ['from-file', 'file of payment-svc', 'active', 'handler handler=payment.charge → error message=boom, 25% of orders', 'ended', '3'],
    ]);
    expect(rows(fixture, 'Injections')[0].slice(1)).toEqual(['flaky', 'error', 'payment-svc · payment.charge', 'abcdef12', 'boom']);
  });

  it('offers actions on API rules only', () => {
    expect(hasButton(fixture, 'Delete flaky')).toBeTrue();
    expect(hasButton(fixture, 'Edit paused')).toBeTrue();
    expect(hasButton(fixture, 'Delete from-file')).toBeFalse();
    expect(hasButton(fixture, 'Edit from-file')).toBeFalse();
    const actions = rows(fixture, 'Chaos rules').map((r) => r[6]);
    expect(actions[0]).toContain('Disable');
    expect(actions[1]).toContain('Enable');
    expect(actions[2]).toBe('');
  });

  it('deletes a rule with the admin token and reads the rules again', async () => {
    button(fixture, 'Delete flaky').click();
    const remove = http.expectOne({ method: 'DELETE', url: '/api/chaos/rules/flaky' });
    expect(bearer(remove)).toBe(`Bearer ${TEST_TOKEN}`);
    remove.flush(null, { status: 204, statusText: 'No Content' });
    answer([view('paused', { state: 'disabled' }, false)]);
    await fixture.whenStable();
    expect(rows(fixture, 'Chaos rules').map((r) => r[0])).toEqual(['paused']);
  });

  it('enables and disables a rule', async () => {
    const action = (id: string, name: string) => {
      const row = Array.from(root(fixture).querySelectorAll('table[aria-label="Chaos rules"] tbody tr')).find((tr) => textOf(tr.querySelector('td')) === id);
      return Array.from(row?.querySelectorAll('button') ?? []).find((b) => textOf(b) === name) as HTMLButtonElement;
    };
    action('paused', 'Enable').click();
    const enable = http.expectOne({ method: 'POST', url: '/api/chaos/rules/paused/enable' });
    expect(enable.request.body).toBeNull();
    expect(bearer(enable)).toBe(`Bearer ${TEST_TOKEN}`);
    enable.flush({});
    answer([view('flaky'), view('paused')]);
    await fixture.whenStable();
    expect(rows(fixture, 'Chaos rules')[1][2]).toBe('active');
    action('flaky', 'Disable').click();
    http.expectOne({ method: 'POST', url: '/api/chaos/rules/flaky/disable' }).flush({});
    answer([]);
  });

  it('shows why a call was refused', async () => {
    button(fixture, 'Delete flaky').click();
    http.expectOne('/api/chaos/rules/flaky').flush({ error: 'this token may not' }, { status: 403, statusText: 'Forbidden' });
    await fixture.whenStable();
    expect(textOf(root(fixture).querySelector('[role="alert"]'))).toContain('403: this token may not do that');
  });
});
