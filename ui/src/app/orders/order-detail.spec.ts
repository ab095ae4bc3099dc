// Unit tests of an order's page: its facts, items and saga timeline, its trace linked through
// the trace UI in force, the faults injected into it and its dead letters.
import { HttpTestingController } from '@angular/common/http/testing';
import { ComponentFixture, TestBed } from '@angular/core/testing';

import { Order } from '../api/orders';
import { root, rows, settle, testProviders, textOf } from '../testing.spec';
import { OrderDetail } from './order-detail';

const ID = 'o-1';

function order(overrides: Partial<Order> = {}): Order {
  return {
    orderId: ID,
    status: 'CANCELLED',
    reason: 'shipping failed',
    customerId: 'customer-44',
    currency: 'EUR',
    total: 2500,
    items: [{ sku: 'SKU-1', quantity: 2, unitPrice: 1250 }],
    shipTo: { country: 'ZZ' },
    createdAtMs: 1_000,
    updatedAtMs: 1_040,
    traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
    history: [
      { step: 'payment', action: 'requested', detail: 'attempt 1', atMs: 1_005 },
      { step: 'payment', action: 'succeeded', atMs: 1_020 },
      { step: 'shipping', action: 'requested', detail: 'attempt 1', atMs: 1_020 },
      { step: 'shipping', action: 'failed', detail: 'no shipping to ZZ', atMs: 1_030 },
      { step: 'payment', action: 'compensating', atMs: 1_030 },
      { step: 'payment', action: 'compensated', atMs: 1_035 },
      { step: 'order', action: 'cancelled', detail: 'shipping failed', atMs: 1_040 },
    ],
    ...overrides,
  };
}

describe('OrderDetail', () => {
  let fixture: ComponentFixture<OrderDetail>;
  let http: HttpTestingController;

  async function open(traceUrl: string | null): Promise<void> {
    fixture = TestBed.createComponent(OrderDetail);
    fixture.componentRef.setInput('id', ID);
    http.expectOne('/api/console/settings').flush({ traceUrl, grafanaUrl: null });
    http.expectOne({ method: 'GET', url: '/api/runtime/sagas' }).flush({
      sagas: [
        {
          service: 'orchestrator',
          name: 'order',
          trigger: 'order.placed',
          mermaid: '',
          steps: [
            { name: 'payment', request: 'payment.requested', success: 'payment.succeeded', irreversible: false, compensation: { request: 'payment.refund', success: 'payment.refunded' } },
            { name: 'shipping', request: 'shipping.requested', success: 'shipping.succeeded', irreversible: false },
          ],
        },
      ],
    });
    await settle(fixture);
    http.expectOne({ method: 'GET', url: `/api/chaos/injections?limit=200&key=${ID}` }).flush({
      injections: [{ at: '', atMs: 1_733_500_000_000, rule: 'no-zz', fault: 'error', service: 'shipping-svc', target: 'shipping.ship' }],
    });
    const dlq = http.expectOne((r) => r.url === '/api/dlq/entries');
    expect(dlq.request.params.get('q')).toBe(ID);
    dlq.flush({ entries: [{ id: 12, topic: 'shipping.requested.dlq', errorKind: 'handler_failed', state: 'new', replayCount: 0, deadLetteredAtMs: 0 }], nextCursor: null });
    http.expectOne({ method: 'GET', url: `/api/orders/${ID}` }).flush(order());
    await fixture.whenStable();
  }

  beforeEach(() => {
    localStorage.clear();
    TestBed.configureTestingModule({ imports: [OrderDetail], providers: testProviders() });
    http = TestBed.inject(HttpTestingController);
  });

  afterEach(() => http.verify());

  it('shows the order, its items and its saga as a timeline', async () => {
    await open(null);
    expect(textOf(root(fixture).querySelector('h1'))).toBe(`Order ${ID}`);
    expect(textOf(root(fixture).querySelector('[data-testid="order-status"]'))).toBe('CANCELLED');
    expect(textOf(root(fixture).querySelector('.facts'))).toContain('Total 25.00 EUR');
    expect(rows(fixture, 'Items')).toEqual([['SKU-1', '2', '12.50 EUR']]);
    const timeline = Array.from(root(fixture).querySelectorAll('ol[aria-label="Saga timeline"] li')).map((li) => textOf(li));
    expect(timeline.length).toBe(4);
    expect(timeline[1]).toContain('shipping failed');
    expect(timeline[1]).toContain('no shipping to ZZ');
    expect(timeline[2]).toMatch(/^undo payment compensated/);
    expect(root(fixture).querySelector('svg[role="img"]')?.getAttribute('aria-label')).toBe("Saga order, this order's path: payment: ok, shipping: bad, undo payment: undone, cancelled: bad");
  });

  it('shows the trace id as text without a trace UI, and as its link with one', async () => {
    await open(null);
    expect(textOf(root(fixture).querySelector('[data-testid="trace-id"]'))).toBe('4bf92f3577b34da6a3ce929d0e0e4736');
    fixture.destroy();

    TestBed.resetTestingModule();
    TestBed.configureTestingModule({ imports: [OrderDetail], providers: testProviders() });
    http = TestBed.inject(HttpTestingController);
    await open('http://jaeger:16686/trace/{traceId}');
    const link = Array.from(root(fixture).querySelectorAll('a')).find((a) => textOf(a) === '4bf92f3577b34da6a3ce929d0e0e4736');
    expect(link?.getAttribute('href')).toBe('http://jaeger:16686/trace/4bf92f3577b34da6a3ce929d0e0e4736');
    expect(link?.getAttribute('rel')).toBe('noopener');
  });

  it('lists the faults injected into the order and its dead letters', async () => {
    await open(null);
    expect(rows(fixture, 'Injections into this order').map((r) => r.slice(1))).toEqual([['no-zz', 'error', 'shipping-svc · shipping.ship']]);
    expect(rows(fixture, 'Dead letters of this order')).toEqual([['#12', 'shipping.requested.dlq', 'handler_failed', 'new']]);
  });

  it('asks no more for an order that ended', async () => {
    await open(null);
    // The next live round reads injections and dead letters, not the ended order.
    await new Promise((resolve) => setTimeout(resolve, 2100));
    http.expectOne((r) => r.url.startsWith('/api/chaos/injections')).flush({ injections: [] });
    http.expectOne((r) => r.url === '/api/dlq/entries').flush({ entries: [], nextCursor: null });
    http.expectNone(`/api/orders/${ID}`);
  });
});
