import { HttpInterceptorFn } from '@angular/common/http';
import { Injectable, inject, signal } from '@angular/core';

const KEY = 'chaos-symphony.admin-token';

/**
 * The bearer token of the admin APIs, asked once per browser session and kept in
 * `sessionStorage` (gone when the tab closes, never in a URL or in localStorage).
 */
@Injectable({ providedIn: 'root' })
export class AdminToken {
  readonly value = signal<string>(sessionStorage.getItem(KEY) ?? '');

  set(token: string): void {
    const trimmed = token.trim();
    if (trimmed) sessionStorage.setItem(KEY, trimmed);
    else sessionStorage.removeItem(KEY);
    this.value.set(trimmed);
  }
}

/** Adds the admin token to every request that changes something (reads are open). */
export const adminTokenInterceptor: HttpInterceptorFn = (request, next) => {
  const token = inject(AdminToken).value();
  if (!token || request.method === 'GET' || request.method === 'HEAD') return next(request);
  return next(request.clone({ setHeaders: { Authorization: `Bearer ${token}` } }));
};
