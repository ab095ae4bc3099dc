import { HttpClient } from '@angular/common/http';
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

/** streams-analytics' SLO view (`GET /api/slo`). */
@Injectable({ providedIn: 'root' })
export class SloApi {
  private readonly http = inject(HttpClient);

  view(): Observable<{ source: string; objectives: Objective[] }> {
    return this.http.get<{ source: string; objectives: Objective[] }>('/api/slo');
  }
}
