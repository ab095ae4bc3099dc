// Unit tests of the order list: orders shown, the status filter and customer search sent as
// query parameters, paging forward and back by cursor.
import { HttpTestingController, TestRequest } from '@angular/common/http/testing';
import { ComponentFixture, TestBed } from '@angular/core/testing';

import { Order } from '../api/orders';
import { button, choose, control, rows, settle, testProviders, typeInto } from '../testing.spec';
import { OrderList } from './order-list';

function order(id: string, overrides: Partial<Order> = {}): Order {
  return {
    orderId: `${id}-0000-0000-0000-000000000000`,
    status: 'COMPLETED',
    customerId: 'customer-1',
    currency: 'EUR',
    total: 123456,
    items: [],
    shipTo: { country: 'DE' },
    createdAtMs: 1_733_500_000_000,
    updatedAtMs: 1_733_500_000_100,
    ...overrides,
  };
}

describe('OrderList', () => {
  let fixture: ComponentFixture<OrderList>;
  let http: HttpTestingController;
  const listed = (): TestRequest => http.expectOne((r) => r.url === '/api/orders' && r.method === 'GET');

  beforeEach(async () => {
    TestBed.configureTestingModule({ imports: [OrderList], providers: testProviders() });
    http = TestBed.inject(HttpTestingController);
    fixture = TestBed.createComponent(OrderList);
    await settle(fixture);
  });

  afterEach(() => http.verify());

  it('lists the newest orders', async () => {
    const first = listed();
    expect(first.request.params.keys()).toEqual(['limit']);
    expect(first.request.params.get('limit')).toBe('25');
    first.flush({ orders: [order('aaaaaaaa'), order('bbbbbbbb', { status: 'CANCELLED', reason: 'no shipping to ZZ', customerId: 'customer-44' })], nextCursor: null });
    await fixture.whenStable();
    expect(rows(fixture, 'Orders').map((r) => [r[0], r[1], r[2], r[3], r[5]])).toEqual([
      ['aaaaaaaa', 'COMPLETED', 'customer-1', '1,234.56 EUR', ''],
      ['bbbbbbbb', 'CANCELLED', 'customer-44', '1,234.56 EUR', 'no shipping to ZZ'],
    ]);
  });

  it('sends the status filter and the customer search, from the first page', async () => {
    listed().flush({ orders: [], nextCursor: null });
    choose(control<HTMLSelectElement>(fixture, 'Status'), 'CANCELLED');
    let request = listed();
    expect(request.request.params.get('status')).toBe('CANCELLED');
    request.flush({ orders: [], nextCursor: null });

    typeInto(control(fixture, 'Customer starts with'), '  customer-4 ');
    request = listed();
    expect(request.request.params.get('customer')).toBe('customer-4');
    expect(request.request.params.get('status')).toBe('CANCELLED');
    expect(request.request.params.has('cursor')).toBeFalse();
    request.flush({ orders: [], nextCursor: null });
    await fixture.whenStable();
    expect(rows(fixture, 'Orders')).toEqual([['No orders match.']]);
  });

  it('pages to older orders and back', async () => {
    listed().flush({ orders: [order('aaaaaaaa')], nextCursor: 'c1' });
    await fixture.whenStable();
    expect(button(fixture, 'Newer').disabled).toBeTrue();

    button(fixture, 'Older').click();
    let request = listed();
    expect(request.request.params.get('cursor')).toBe('c1');
    request.flush({ orders: [order('bbbbbbbb')], nextCursor: 'c2' });
    await fixture.whenStable();

    button(fixture, 'Older').click();
    request = listed();
    expect(request.request.params.get('cursor')).toBe('c2');
    request.flush({ orders: [order('cccccccc')], nextCursor: null });
    await fixture.whenStable();
    expect(button(fixture, 'Older').disabled).toBeTrue();

    button(fixture, 'Newer').click();
    expect(listed().request.params.get('cursor')).toBe('c1');
    button(fixture, 'Newest').click();
    expect(listed().request.params.has('cursor')).toBeFalse();
  });
});
