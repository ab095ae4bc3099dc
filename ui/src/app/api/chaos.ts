import { HttpClient } from '@angular/common/http';
import { Injectable, inject } from '@angular/core';
import { Observable } from 'rxjs';

/** A rule as chaos-svc takes it (`POST /api/chaos/rules`). */
export interface RuleSpec {
  id: string;
  target: Record<string, unknown> & { kind: string };
  fault: Record<string, unknown> & { kind: string };
  probability?: number;
  rate?: number;
  key_sample?: number;
  ttl?: string;
  max_count?: number;
  enabled?: boolean;
  allow_drop?: boolean;
  description?: string;
  start?: string;
  end?: string;
  expires_at?: string;
}

/** A rule as chaos-svc lists it. */
export interface RuleView {
  id: string;
  source: { kind?: string; service?: string } | string;
  state: string;
  count: number;
  activatedAtMs: number;
  expiresAtMs: number | null;
  rule: RuleSpec;
}

export interface Injection {
  at: string;
  atMs: number;
  rule: string;
  fault: string;
  service: string;
  target: string;
  key?: string;
  detail?: string;
}

/** The typed client of chaos-svc (`/api/chaos`). */
@Injectable({ providedIn: 'root' })
export class ChaosApi {
  private readonly http = inject(HttpClient);

  rules(): Observable<{ rules: RuleView[] }> {
    return this.http.get<{ rules: RuleView[] }>('/api/chaos/rules');
  }

  create(rule: RuleSpec): Observable<RuleView> {
    return this.http.post<RuleView>('/api/chaos/rules', rule);
  }

  update(rule: RuleSpec): Observable<RuleView> {
    return this.http.put<RuleView>(`/api/chaos/rules/${encodeURIComponent(rule.id)}`, rule);
  }

  remove(id: string): Observable<unknown> {
    return this.http.delete(`/api/chaos/rules/${encodeURIComponent(id)}`);
  }

  switch(id: string, on: boolean): Observable<RuleView> {
    return this.http.post<RuleView>(`/api/chaos/rules/${encodeURIComponent(id)}/${on ? 'enable' : 'disable'}`, null);
  }

  /** The newest injections, optionally only those of one order. */
  injections(limit = 50, order?: string): Observable<{ injections: Injection[] }> {
    const key = order ? `&key=${encodeURIComponent(order)}` : '';
    return this.http.get<{ injections: Injection[] }>(`/api/chaos/injections?limit=${limit}${key}`);
  }
}
