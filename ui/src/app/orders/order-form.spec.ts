import { HttpErrorResponse, provideHttpClient } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { TestBed } from '@angular/core/testing';
import { provideRouter } from '@angular/router';

import { OrderForm, PRESETS } from './order-form';

describe('OrderForm', () => {
  beforeEach(() => {
    TestBed.configureTestingModule({
      imports: [OrderForm],
      providers: [provideHttpClient(), provideHttpClientTesting(), provideRouter([])],
    });
  });

  it('fills the form from a preset and posts that order', () => {
    const fixture = TestBed.createComponent(OrderForm);
    const form = fixture.componentInstance;
    const zz = PRESETS.find((p) => p.name === 'country-zz');
    form.use(zz!.order);
    let placed = '';
    form.placedOrder.subscribe((id) => (placed = id));
    form.place();
    const http = TestBed.inject(HttpTestingController);
    const request = http.expectOne('/api/orders');
    expect(request.request.body.shipTo.country).toBe('ZZ');
    expect(request.request.body.items[0].quantity).toBe(1);
    request.flush({ orderId: 'o-1', status: 'PENDING' }, { status: 202, statusText: 'Accepted' });
    expect(placed).toBe('o-1');
    expect(form.placed()).toBe('o-1');
  });

  it('shows the fields the API refused', () => {
    const fixture = TestBed.createComponent(OrderForm);
    const form = fixture.componentInstance;
    form.place();
    TestBed.inject(HttpTestingController)
      .expectOne('/api/orders')
      .flush(
        { error: 'invalid order: `shipTo.country`: must be two capital letters', fields: [{ field: 'shipTo.country', message: 'must be two capital letters' }] },
        { status: 422, statusText: 'Unprocessable Entity' },
      );
    expect(form.error()).toContain('422');
    expect(form.fieldList()).toEqual([['shipTo.country', 'must be two capital letters']]);
    expect(new HttpErrorResponse({ status: 0 }).status).toBe(0);
  });
});
