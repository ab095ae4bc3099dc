import { HttpClient } from '@angular/common/http';
import { Injectable, inject } from '@angular/core';
import { Observable } from 'rxjs';

export interface SagaStep {
  name: string;
  request: string;
  success: string;
  failure?: string | null;
  irreversible: boolean;
  compensation?: { request: string; success: string } | null;
}

export interface SagaDefinition {
  service: string;
  name: string;
  trigger: string;
  steps: SagaStep[];
  mermaid: string;
}

/** The sagas the runner orchestrates (`GET /api/runtime/sagas`). */
@Injectable({ providedIn: 'root' })
export class SagasApi {
  private readonly http = inject(HttpClient);

  list(): Observable<{ sagas: SagaDefinition[] }> {
    return this.http.get<{ sagas: SagaDefinition[] }>('/api/runtime/sagas');
  }
}
