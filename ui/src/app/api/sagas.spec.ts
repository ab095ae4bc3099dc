// Unit test of the sagas client.
import { HttpTestingController } from '@angular/common/http/testing';
import { TestBed } from '@angular/core/testing';

import { apiTesting } from '../testing.spec';
import { SagasApi } from './sagas';

describe('SagasApi', () => {
  it('lists the sagas the runner orchestrates', () => {
    const http: HttpTestingController = apiTesting();
    let names: string[] = [];
    TestBed.inject(SagasApi)
      .list()
      .subscribe((s) => (names = s.sagas.map((saga) => saga.name)));
    http.expectOne({ method: 'GET', url: '/api/runtime/sagas' }).flush({ sagas: [{ name: 'order' }] });
    expect(names).toEqual(['order']);
    http.verify();
  });
});
