import { HttpClient, HttpParams } from '@angular/common/http';
import { Injectable, inject } from '@angular/core';
import { Observable } from 'rxjs';

export interface BurnRate {
  alert: string;
  severity: string;
  long: string;
  short: string;
  threshold: number;
  longBurnRate: number | null;
  shortBurnRate: number | null;
  firing: boolean;
}

export interface Objective {
  name: string;
  kind: string;
  objective: number;
  window: string;
  current: number | null;
  errorRatio1h: number | null;
  burnRates: BurnRate[];
  errorBudgetRemaining: number | null;
  ordersLastHour: number | null;
  enoughTraffic: boolean;
  breaching: boolean;
}

/** One reading of an objective's history; `burnRates` follow the history's `burnWindows`. */
export interface SloSample {
  atMs: number;
  current: number | null;
  errorBudgetRemaining: number | null;
  burnRates: (number | null)[];
}

/** What streams-analytics remembers of its objectives (in memory, 24 h, empty after a restart). */
export interface SloHistory {
  intervalSeconds: number | null;
  /** The long windows of the burn-rate alerts, e.g. `["1h", "6h", "3d"]`. */
  burnWindows: string[];
  /** Each objective's samples, oldest first (at most 360, downsampled by the server). */
  objectives: { name: string; samples: SloSample[] }[];
}

/** The ranges the history may be asked for, in minutes (the API takes 1..=1440). */
export const HISTORY_MINUTES = { min: 1, max: 1440 } as const;

/** streams-analytics' SLO view (`GET /api/slo`) and its history (`GET /api/slo/history`). */
@Injectable({ providedIn: 'root' })
export class SloApi {
  private readonly http = inject(HttpClient);

  view(): Observable<{ source: string; objectives: Objective[] }> {
    return this.http.get<{ source: string; objectives: Objective[] }>('/api/slo');
  }

  /** The last `minutes` of history; `minutes` is clamped to what the API takes. */
  history(minutes: number): Observable<SloHistory> {
    const whole = Number.isFinite(minutes) ? Math.round(minutes) : 60;
    const bounded = Math.min(HISTORY_MINUTES.max, Math.max(HISTORY_MINUTES.min, whole));
    return this.http.get<SloHistory>('/api/slo/history', { params: new HttpParams().set('minutes', String(bounded)) });
  }
}
