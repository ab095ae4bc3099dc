import { provideHttpClient } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { TestBed } from '@angular/core/testing';

import { OrdersApi } from './orders';

describe('OrdersApi', () => {
  let api: OrdersApi;
  let http: HttpTestingController;

  beforeEach(() => {
    TestBed.configureTestingModule({ providers: [provideHttpClient(), provideHttpClientTesting()] });
    api = TestBed.inject(OrdersApi);
    http = TestBed.inject(HttpTestingController);
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
});
