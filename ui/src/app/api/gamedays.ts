import { HttpClient } from '@angular/common/http';
import { Injectable, inject } from '@angular/core';
import { Observable } from 'rxjs';

export interface ScenarioView {
  name: string;
  file: string;
  valid: boolean;
  description?: string;
  hypothesis?: string;
  durationMs?: number;
  phases?: string[];
  faults?: { name: string; kind: string; summary: string; atMs: number; forMs: number }[];
  stopConditions?: string[];
  problems?: string;
}

export interface RunState {
  id: string;
  scenario: string;
  state: 'running' | 'auditing' | 'passed' | 'failed' | 'aborted' | 'interrupted';
  startedBy: string;
  startedAtMs: number;
  endedAtMs?: number;
  plannedMs?: number;
  elapsedMs: number;
  phase?: string;
  rate?: number;
  burnRate?: number;
  orders: { sent: number; accepted: number; refused: number; settled: number; completed: number; cancelled: number; failed: number; unexpected: number };
  faults?: { name: string; kind: string; summary: string; state: string; injections: number; error?: string }[];
  phases?: { name: string; held: boolean; orders: number; checks: { name: string; expected: string; measured: string; held: boolean }[] }[];
  audit?: { name: string; passed: boolean; detail: string }[];
  stop?: { condition: string; atMs: number; detail: string };
  verdict?: { outcome: string; summary: string; hypothesisHeld: boolean; auditPassed: boolean };
  errors?: string[];
}

/** The typed client of gameday-svc (`/api/gamedays`). */
@Injectable({ providedIn: 'root' })
export class GamedaysApi {
  private readonly http = inject(HttpClient);

  scenarios(): Observable<{ scenarios: ScenarioView[] }> {
    return this.http.get<{ scenarios: ScenarioView[] }>('/api/gamedays/scenarios');
  }

  runs(): Observable<{ runs: RunState[] }> {
    return this.http.get<{ runs: RunState[] }>('/api/gamedays/runs?limit=50');
  }

  run(id: string): Observable<RunState> {
    return this.http.get<RunState>(`/api/gamedays/runs/${encodeURIComponent(id)}`);
  }

  start(scenario: string): Observable<RunState> {
    return this.http.post<RunState>('/api/gamedays/runs', { scenario });
  }

  abort(id: string): Observable<unknown> {
    return this.http.post(`/api/gamedays/runs/${encodeURIComponent(id)}/abort`, null);
  }

  reportUrl(id: string): string {
    return `/api/gamedays/runs/${encodeURIComponent(id)}/report`;
  }
}
