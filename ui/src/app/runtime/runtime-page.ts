import { HttpErrorResponse } from '@angular/common/http';
import { Component, inject, signal } from '@angular/core';

import { describeError } from '../api/errors';
import { Readiness, RelayStatus, RuntimeApi, ServiceConfig } from '../api/runtime';
import { live } from '../shared/live';
import { ConsoleSettings } from '../shared/settings';
import { FormsModule } from '@angular/forms';

/** The runtime: each service's config and last reload, readiness part by part, the relay. */
@Component({
  selector: 'app-runtime-page',
  imports: [FormsModule],
  template: `
    <h1>Runtime</h1>
    @if (error()) { <p class="error" role="alert">{{ error() }}</p> }
    @if (ready(); as r) {
      <p class="ready">
        <span [class]="'status ' + (r.ready ? 'succeeded' : 'failed')" data-testid="readiness">{{ r.ready ? 'ready' : 'not ready' }}</span>
        database {{ r.database ? 'up' : 'down' }} · broker {{ r.broker ? 'up' : 'down' }}
        @if (r.partsDown.length) { · <span class="error">down: {{ r.partsDown.join(', ') }}</span> }
      </p>
    }
    <h2>Services</h2>
    <table aria-label="Services">
      <thead><tr><th scope="col">Service</th><th scope="col">File</th><th scope="col">Config hash</th><th scope="col">Last reload</th><th scope="col">Error</th></tr></thead>
      <tbody>
        @for (s of services(); track s.service) {
          <tr><td>{{ s.service }}</td><td class="mono">{{ s.path ?? '' }}</td><td class="mono">{{ s.hash ?? '' }}</td><td>{{ s.lastResult }} <span class="muted">{{ s.lastAttemptAt ?? '' }}</span></td><td class="error">{{ s.lastError ?? '' }}</td></tr>
        }
      </tbody>
    </table>
    @if (relay(); as r) {
      <h2>Outbox relay</h2>
      <p>mode {{ r.mode }} · lag {{ r.lagSeconds.toFixed(1) }} s · {{ r.publishedTotal }} published · {{ r.inFlightRows }} in flight · {{ r.reconnects }} reconnects@if (r.slot?.retainedWalBytes !== undefined) { · retained WAL {{ r.slot?.retainedWalBytes }} bytes}</p>
      @if (r.lastError) { <p class="error">{{ r.lastError }}</p> }
    }
    <h2>Links of this console</h2>
    <form class="links" (ngSubmit)="settings.save(traceUrl, grafanaUrl)">
      <label>Trace UI, with {{ '{' }}traceId{{ '}' }}<input name="traceUrl" [(ngModel)]="traceUrl" placeholder="http://jaeger:16686/trace/{traceId}" size="40" /></label>
      <label>Grafana<input name="grafanaUrl" [(ngModel)]="grafanaUrl" placeholder="http://grafana:3000" size="30" /></label>
      <button type="submit">Save</button>
    </form>
    @if (ready(); as r) {
      <h2>Parts</h2>
      <table aria-label="Parts">
        <thead><tr><th scope="col">Part</th><th scope="col">Up</th><th scope="col">Restarts</th><th scope="col">Last failure</th></tr></thead>
        <tbody>
          @for (p of parts(); track p[0]) {
            <tr><td>{{ p[0] }}</td><td>{{ p[1].up ? 'yes' : 'no' }}</td><td>{{ p[1].restarts }}</td><td class="muted">{{ p[1].lastFailure ?? '' }}</td></tr>
          }
        </tbody>
      </table>
    }
  `,
  styles: `.links { display: flex; flex-wrap: wrap; gap: 0.6rem; align-items: flex-end; }`,
})
export class RuntimePage {
  private readonly api = inject(RuntimeApi);
  readonly services = signal<ServiceConfig[]>([]);
  readonly relay = signal<RelayStatus | null>(null);
  readonly ready = signal<Readiness | null>(null);
  readonly parts = signal<[string, Readiness['parts'][string]][]>([]);
  readonly error = signal('');
  readonly settings = inject(ConsoleSettings);
  traceUrl = this.settings.traceUrl();
  grafanaUrl = this.settings.grafanaUrl();

  constructor() {
    live(() => {
      this.api.config().subscribe({ next: (c) => this.services.set(c.services), error: (e: unknown) => this.error.set(describeError(e)) });
      this.api.relay().subscribe({ next: (r) => this.relay.set(r), error: () => this.relay.set(null) });
      this.api.readiness().subscribe({
        next: (r) => this.showReadiness(r),
        // Not ready is a 503 whose body is the same report.
        error: (e: unknown) => {
          if (e instanceof HttpErrorResponse && e.status === 503 && e.error) this.showReadiness(e.error as Readiness);
          else this.error.set(describeError(e));
        },
      });
    });
  }

  private showReadiness(r: Readiness): void {
    this.ready.set(r);
    this.parts.set(Object.entries(r.parts ?? {}));
  }
}
