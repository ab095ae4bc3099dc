// Unit tests of the game-days pages: scenarios offered, a start posting its scenario and
// opening the run, a run shown live and aborted, its report linked once over.
import { HttpTestingController } from '@angular/common/http/testing';
import { ComponentFixture, TestBed } from '@angular/core/testing';
import { Router } from '@angular/router';

import { RunState } from '../api/gamedays';
import { button, hasButton, root, rows, settle, testProviders, textOf } from '../testing.spec';
import { GamedaysPage } from './gamedays-page';
import { RunPage } from './run-page';

function run(overrides: Partial<RunState> = {}): RunState {
  return {
    id: 'run-0001-aaaa',
    scenario: 'checkout-storm',
    state: 'running',
    startedBy: 'admin',
    startedAtMs: 1_733_500_000_000,
    plannedMs: 60_000,
    elapsedMs: 15_000,
    phase: 'storm',
    rate: 20,
    burnRate: 1.5,
    orders: { sent: 300, accepted: 290, refused: 10, settled: 280, completed: 270, cancelled: 8, failed: 2, unexpected: 0 },
    faults: [{ name: 'slow-payments', kind: 'latency', summary: 'payment.charge +1s', state: 'active', injections: 40 }],
    ...overrides,
  };
}

describe('GamedaysPage', () => {
  let fixture: ComponentFixture<GamedaysPage>;
  let http: HttpTestingController;

  beforeEach(async () => {
    TestBed.configureTestingModule({ imports: [GamedaysPage], providers: testProviders() });
    http = TestBed.inject(HttpTestingController);
    fixture = TestBed.createComponent(GamedaysPage);
    http.expectOne({ method: 'GET', url: '/api/gamedays/scenarios' }).flush({
      scenarios: [
        { name: 'checkout-storm', file: 'checkout-storm.toml', valid: true, description: 'Orders pour in while payments slow down', durationMs: 60_000, faults: [{ name: 'slow', kind: 'latency', summary: '', atMs: 0, forMs: 1 }], stopConditions: ['burn rate > 10'] },
        { name: 'broken', file: 'broken.toml', valid: false, problems: 'line 3: unknown fault kind' },
      ],
    });
    await settle(fixture);
    http.expectOne({ method: 'GET', url: '/api/gamedays/runs?limit=50' }).flush({ runs: [run({ state: 'passed', verdict: { outcome: 'passed', summary: 'hypothesis held', hypothesisHeld: true, auditPassed: true } })] });
    await fixture.whenStable();
  });

  afterEach(() => http.verify());

  it('offers each valid scenario and says what is wrong with the others', () => {
    const items = Array.from(root(fixture).querySelectorAll('.scenarios li')).map((li) => textOf(li));
    expect(items[0]).toContain('Orders pour in while payments slow down');
    expect(items[0]).toContain('1 min 0 s of load · 1 fault(s) · stops on burn rate > 10');
    expect(items[1]).toContain('This file has problems: line 3: unknown fault kind');
    expect(hasButton(fixture, 'Start checkout-storm')).toBeTrue();
    expect(hasButton(fixture, 'Start broken')).toBeFalse();
    expect(rows(fixture, 'Game-day runs').map((r) => [r[0], r[1], r[2], r[4], r[5]])).toEqual([['run-0001', 'checkout-storm', 'passed', '290', 'hypothesis held']]);
  });

  it('starts a run of the scenario and opens it', () => {
    const navigate = spyOn(TestBed.inject(Router), 'navigate').and.resolveTo(true);
    button(fixture, 'Start checkout-storm').click();
    const start = http.expectOne({ method: 'POST', url: '/api/gamedays/runs' });
    expect(start.request.body).toEqual({ scenario: 'checkout-storm' });
    start.flush(run(), { status: 201, statusText: 'Created' });
    expect(navigate).toHaveBeenCalledOnceWith(['/gamedays/runs', 'run-0001-aaaa']);
  });

  it('says why a start was refused, and stays', async () => {
    const navigate = spyOn(TestBed.inject(Router), 'navigate');
    button(fixture, 'Start checkout-storm').click();
    http.expectOne('/api/gamedays/runs').flush({ error: 'a game day is running already' }, { status: 409, statusText: 'Conflict' });
    await fixture.whenStable();
    expect(textOf(root(fixture).querySelector('[role="alert"]'))).toBe('409: a game day is running already');
    expect(navigate).not.toHaveBeenCalled();
  });
});

describe('RunPage', () => {
  let fixture: ComponentFixture<RunPage>;
  let http: HttpTestingController;

  beforeEach(async () => {
    TestBed.configureTestingModule({ imports: [RunPage], providers: testProviders() });
    http = TestBed.inject(HttpTestingController);
    fixture = TestBed.createComponent(RunPage);
    fixture.componentRef.setInput('id', 'run-0001-aaaa');
    await settle(fixture);
  });

  afterEach(() => http.verify());

  it('shows a running run live and aborts it', async () => {
    http.expectOne({ method: 'GET', url: '/api/gamedays/runs/run-0001-aaaa' }).flush(run());
    await fixture.whenStable();
    expect(textOf(root(fixture).querySelector('[data-testid="run-state"]'))).toBe('running');
    expect(textOf(root(fixture))).toContain('15.0 s of 1 min 0 s · phase storm · 20.0 orders/s · burn rate 1.50');
    expect(rows(fixture, 'Faults')).toEqual([['slow-payments', 'payment.charge +1s', 'active', '40']]);
    button(fixture, 'Abort').click();
    const abort = http.expectOne({ method: 'POST', url: '/api/gamedays/runs/run-0001-aaaa/abort' });
    expect(abort.request.body).toBeNull();
    abort.flush({});
  });

  it('shows the verdict, the audit and the report of a run that is over, with no abort', async () => {
    http.expectOne('/api/gamedays/runs/run-0001-aaaa').flush(
      run({ state: 'failed', verdict: { outcome: 'failed', summary: 'burn rate too high', hypothesisHeld: false, auditPassed: true }, audit: [{ name: 'no-lost-orders', passed: true, detail: '290 of 290' }] }),
    );
    await fixture.whenStable();
    expect(hasButton(fixture, 'Abort')).toBeFalse();
    expect(textOf(root(fixture))).toContain('failed burn rate too high');
    expect(rows(fixture, 'Audit')).toEqual([['no-lost-orders', 'passed', '290 of 290']]);
    const report = Array.from(root(fixture).querySelectorAll('a')).find((a) => textOf(a) === 'Open the report');
    expect(report?.getAttribute('href')).toBe('/api/gamedays/runs/run-0001-aaaa/report');
  });
});
