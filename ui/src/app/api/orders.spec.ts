import { HttpTestingController } from '@angular/common/http/testing';
import { TestBed } from '@angular/core/testing';

import { TEST_TOKEN, apiTesting, bearer } from '../testing.spec';
import { NewOrder, OrdersApi } from './orders';

describe('OrdersApi', () => {
  let api: OrdersApi;
  let http: HttpTestingController;

  beforeEach(() => {
    http = apiTesting();
    api = TestBed.inject(OrdersApi);
  });

  afterEach(() => http.verify());

  it('asks for a page with only the filters that are set', () => {
    api.list({ status: 'CANCELLED', customer: 'blocked-', cursor: '42', limit: 10 }).subscribe();
    const request = http.expectOne((r) => r.url === '/api/orders');
    expect(request.request.params.get('status')).toBe('CANCELLED');
    expect(request.request.params.get('customer')).toBe('blocked-');
    expect(request.request.params.get('cursor')).toBe('42');
    expect(request.request.params.get('limit')).toBe('10');
    request.flush({ orders: [], nextCursor: null });

    api.list({ status: '', customer: '' }).subscribe();
    const plain = http.expectOne((r) => r.url === '/api/orders');
    expect(plain.request.params.keys()).toEqual(['limit']);
    plain.flush({ orders: [], nextCursor: null });
  });

  it('escapes an order id in the path', () => {
    api.get('a/b?c').subscribe();
    http.expectOne('/api/orders/a%2Fb%3Fc').flush({});
  });

  it('places an order with POST (anyone may: the token goes along when set)', () => {
    const order: NewOrder = { customerId: 'c-1', currency: 'EUR', items: [{ sku: 'SKU-1', quantity: 2, unitPrice: 500 }], shipTo: { country: 'DE' } };
    let placed = '';
    api.place(order).subscribe((answer) => (placed = answer.orderId));
    const request = http.expectOne({ method: 'POST', url: '/api/orders' });
    expect(request.request.body).toEqual(order);
    expect(bearer(request)).toBe(`Bearer ${TEST_TOKEN}`);
    request.flush({ orderId: 'o-1', status: 'PENDING' }, { status: 202, statusText: 'Accepted' });
    expect(placed).toBe('o-1');
  });
});
