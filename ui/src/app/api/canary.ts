import { HttpClient } from '@angular/common/http';
import { Injectable, inject } from '@angular/core';
import { Observable } from 'rxjs';

export interface CanaryEvent {
  atMs: number;
  kind: string;
  from: number;
  to: number;
  by: string;
  reason: string;
}

export interface CanaryState {
  service: string;
  step: string;
  topic: string;
  percent: number;
  phase: string;
  setBy: string;
  setAtMs: number;
  analysis?: { intervalMs: number; windowMs: number; minRequests: number; maxFailureRateIncrease: number; maxLatencyRatio: number; steps: number[] } | null;
  outcomes: { stable: { success: number; failure: number }; canary: { success: number; failure: number } };
  events: CanaryEvent[];
}

export interface StepFigures {
  step: string;
  variant: string;
  outcomes: { success: number; failure: number; no_reply: number };
  failureRatio: number;
  latencyMs: { p50: number | null; p95: number | null; p99: number | null; count: number };
}

/** The canary: its state (`/api/runtime/canary`), a new percentage (`PUT /api/chaos/canary`), step figures by variant. */
@Injectable({ providedIn: 'root' })
export class CanaryApi {
  private readonly http = inject(HttpClient);

  state(): Observable<{ canaries: CanaryState[] }> {
    return this.http.get<{ canaries: CanaryState[] }>('/api/runtime/canary');
  }

  set(step: string, percent: number, reason: string): Observable<unknown> {
    return this.http.put('/api/chaos/canary', { step, percent, reason });
  }

  /** The 5-minute window of streams-analytics: each step's outcomes and latency by variant. */
  steps(): Observable<StepFigures[]> {
    return new Observable<StepFigures[]>((subscriber) => {
      const sub = this.http.get<Record<string, { steps?: StepFigures[] }>>('/api/analytics/windows').subscribe({
        next: (w) => {
          subscriber.next(w['5m']?.steps ?? []);
          subscriber.complete();
        },
        error: (e: unknown) => subscriber.error(e),
      });
      return () => sub.unsubscribe();
    });
  }
}
