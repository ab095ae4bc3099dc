import { HttpErrorResponse } from '@angular/common/http';

import { describeError, fieldErrors } from './errors';

describe('describeError', () => {
  it('says 401 and 403 as such, and what an unreachable runner means', () => {
    expect(describeError(new HttpErrorResponse({ status: 401, error: { error: 'an admin token is needed' } }))).toContain('401');
    expect(describeError(new HttpErrorResponse({ status: 403, error: { error: 'not this one' } }))).toContain('403: this token may not do that');
    expect(describeError(new HttpErrorResponse({ status: 0 }))).toContain('does not answer');
    expect(describeError(new HttpErrorResponse({ status: 422, error: { error: 'invalid rule: `id`: bad' } }))).toBe('422: invalid rule: `id`: bad');
  });

  it('reads the API field problems', () => {
    const e = new HttpErrorResponse({ status: 422, error: { error: 'x', fields: [{ field: 'ttl', message: 'too long' }] } });
    expect(fieldErrors(e)).toEqual({ ttl: 'too long' });
    expect(fieldErrors(new Error('plain'))).toEqual({});
  });
});
