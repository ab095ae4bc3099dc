import { HttpClient } from '@angular/common/http';
import { Injectable, inject } from '@angular/core';
import { Observable } from 'rxjs';

export interface ServiceConfig {
  service: string;
  path?: string;
  hash?: string;
  lastResult: string;
  lastError?: string | null;
  lastAttemptAt?: string;
  loadedAt?: string;
}

export interface RelayStatus {
  mode: string;
  lagSeconds: number;
  publishedTotal: number;
  inFlightRows: number;
  reconnects: number;
  lastError?: string | null;
  slot?: { name?: string; retainedWalBytes?: number; lagBytes?: number } | null;
}

export interface Readiness {
  ready: boolean;
  database: boolean;
  broker: boolean;
  partsDown: string[];
  parts: Record<string, { up: boolean; restarts: number; lastFailure?: string | null }>;
}

/** The runner's own routes: loaded configs, readiness, the relay. */
@Injectable({ providedIn: 'root' })
export class RuntimeApi {
  private readonly http = inject(HttpClient);

  config(): Observable<{ services: ServiceConfig[] }> {
    return this.http.get<{ services: ServiceConfig[] }>('/api/runtime/config');
  }

  relay(): Observable<RelayStatus> {
    return this.http.get<RelayStatus>('/api/relay/status');
  }

  /** `/readyz` answers 503 with the same body when not ready. */
  readiness(): Observable<Readiness> {
    return this.http.get<Readiness>('/readyz');
  }
}
