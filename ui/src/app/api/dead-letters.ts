import { HttpClient, HttpParams } from '@angular/common/http';
import { Injectable, inject } from '@angular/core';
import { Observable } from 'rxjs';

export interface DeadLetterTopic {
  topic: string;
  originalTopics: string[];
  total: number;
  byState: Record<string, number>;
  byKind: Record<string, number>;
  newest?: string;
}

export interface DeadLetterSummary {
  id: number;
  topic: string;
  originalTopic?: string;
  eventType?: string;
  key?: string;
  errorKind: string;
  errorMessage?: string;
  attempts?: number;
  state: string;
  replayCount: number;
  deadLetteredAtMs: number;
  payloadPreview?: string;
}

export interface DeadLetter extends DeadLetterSummary {
  payload: unknown;
  payloadEncoding: 'json' | 'text' | 'binary' | 'none';
  headers: { name: string; value: string }[];
  consumerGroup?: string;
  firstFailureAt?: string;
  lastFailureAt?: string;
  traceparent?: string;
  history: { action: string; actor: string; detail?: string; atMs: number }[];
  replay: { allowed: boolean; refusal?: string };
}

export interface DeadLetterFilter {
  topic?: string;
  kind?: string;
  state?: string;
  q?: string;
  /** Dead-lettered at or after / before, Unix ms. */
  from?: number | null;
  to?: number | null;
  cursor?: string | null;
}

export interface AuditLine {
  seq: number;
  actor: string;
  action: string;
  target: string;
  outcome: string;
  atMs: number;
}

/** The typed client of dlq-admin (`/api/dlq`). */
@Injectable({ providedIn: 'root' })
export class DeadLettersApi {
  private readonly http = inject(HttpClient);

  topics(): Observable<{ topics: DeadLetterTopic[] }> {
    return this.http.get<{ topics: DeadLetterTopic[] }>('/api/dlq/topics');
  }

  entries(filter: DeadLetterFilter): Observable<{ entries: DeadLetterSummary[]; nextCursor: string | null }> {
    let params = new HttpParams().set('limit', '25');
    for (const key of ['topic', 'kind', 'state', 'q', 'cursor'] as const) {
      const value = filter[key];
      if (value) params = params.set(key, value);
    }
    if (filter.from) params = params.set('from', String(filter.from));
    if (filter.to) params = params.set('to', String(filter.to));
    return this.http.get<{ entries: DeadLetterSummary[]; nextCursor: string | null }>('/api/dlq/entries', { params });
  }

  entry(id: string): Observable<DeadLetter> {
    return this.http.get<DeadLetter>(`/api/dlq/entries/${encodeURIComponent(id)}`);
  }

  /** Replays one entry, with an edited payload when given. */
  replay(id: number, payload?: unknown): Observable<unknown> {
    return this.http.post(`/api/dlq/entries/${id}/replay`, payload === undefined ? null : { payload });
  }

  discard(id: number, reason: string): Observable<unknown> {
    return this.http.post(`/api/dlq/entries/${id}/discard`, { reason });
  }

  /** Bulk replay or discard of what a filter selects; `dryRun` only says what would happen. */
  bulk(action: 'replay' | 'discard', filter: DeadLetterFilter, dryRun: boolean, reason?: string): Observable<Record<string, unknown>> {
    const body: Record<string, unknown> = { dryRun };
    for (const key of ['topic', 'kind', 'state', 'q', 'from', 'to'] as const) if (filter[key]) body[key] = filter[key];
    if (action === 'discard') body['reason'] = reason || 'discarded from the console';
    return this.http.post<Record<string, unknown>>(`/api/dlq/${action}`, body);
  }

  audit(): Observable<{ audit: AuditLine[] }> {
    return this.http.get<{ audit: AuditLine[] }>(`/api/dlq/audit?limit=20`);
  }
}
