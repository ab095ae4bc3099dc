import { HttpErrorResponse } from '@angular/common/http';
import { Component, inject, signal } from '@angular/core';
import { FormsModule } from '@angular/forms';

import { describeError } from '../api/errors';
import { Readiness, RelayStatus, RuntimeApi, ServiceConfig } from '../api/runtime';
import { live } from '../shared/live';
import { ConsoleSettings, LinkName, web } from '../shared/settings';

/** The runtime: each service's config and last reload, readiness part by part, the relay, the console's links. */
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
      <p>mode {{ r.mode }} · lag {{ r.lagSeconds.toFixed(1) }} s · {{ r.publishedTotal }} published · {{ r.inFlightRows }} in flight · {{ r.reconnects }} reconnects@if (r.slot?.retainedWalBytes != null) { · retained WAL {{ r.slot?.retainedWalBytes }} bytes}</p>
      @if (r.lastError) { <p class="error">{{ r.lastError }}</p> }
    }
    <h2>Links of this console</h2>
    <p class="muted">The runner may set them for every browser (RUNNER_CONSOLE_TRACE_URL, RUNNER_CONSOLE_GRAFANA_URL); an address saved here wins in this browser.</p>
    @if (settings.serverError()) { <p class="error" data-testid="server-links-error">The runner's links could not be read: {{ settings.serverError() }}</p> }
    <form class="links" (ngSubmit)="save()">
      @for (l of links; track l.name) {
        <div class="link">
          <label>{{ l.title }} for this browser{{ l.hint }}<input [name]="l.name" [(ngModel)]="drafts[l.name]" [placeholder]="settings.server[l.name]() || l.example" size="40" /></label>
          <p class="source" [attr.data-testid]="l.name + '-source'">
            @switch (settings.sourceOf(l.name)) {
              @case ('browser') { In force: <span class="mono">{{ inForce(l.name) }}</span>, from this browser. }
              @case ('server') { In force: <span class="mono">{{ inForce(l.name) }}</span>, from the server. }
              @default { None: neither this browser nor the server sets one. }
            }
          </p>
          @if (settings.browser[l.name]()) {
            <button type="button" (click)="clear(l.name)">Clear this browser's {{ l.title }}</button>
          }
        </div>
      }
      <button type="submit">Save</button>
    </form>
    @if (notice()) { <p role="status">{{ notice() }}</p> }
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
  styles: `
    .links { display: flex; flex-wrap: wrap; gap: 1.2rem; align-items: flex-end; }
    .link { display: flex; flex-direction: column; gap: 0.3rem; align-items: flex-start; }
    .source { margin: 0; font-size: 0.85rem; }
  `,
})
export class RuntimePage {
  private readonly api = inject(RuntimeApi);
  readonly services = signal<ServiceConfig[]>([]);
  readonly relay = signal<RelayStatus | null>(null);
  readonly ready = signal<Readiness | null>(null);
  readonly parts = signal<[string, Readiness['parts'][string]][]>([]);
  readonly error = signal('');
  readonly settings = inject(ConsoleSettings);
  readonly links: { name: LinkName; title: string; hint: string; example: string }[] = [
    { name: 'trace', title: 'Trace UI', hint: ', a URL with {traceId}', example: 'http://jaeger:16686/trace/{traceId}' },
    { name: 'grafana', title: 'Grafana', hint: '', example: 'http://grafana:3000' },
  ];
  /** What the form holds: this browser's own values. */
  readonly drafts: Record<LinkName, string> = { trace: this.settings.browser.trace(), grafana: this.settings.browser.grafana() };
  readonly notice = signal('');

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

  /** The address in force of a link. */
  inForce(link: LinkName): string {
    return link === 'trace' ? this.settings.traceUrl() : this.settings.grafanaUrl();
  }

  save(): void {
    const refused = this.links.filter((l) => this.drafts[l.name].trim() && !web(this.drafts[l.name])).map((l) => this.drafts[l.name].trim());
    this.settings.save(this.drafts.trace, this.drafts.grafana);
    this.drafts.trace = this.settings.browser.trace();
    this.drafts.grafana = this.settings.browser.grafana();
    this.notice.set(refused.length ? `Saved; not kept, as it is not an http(s) address: ${refused.join(', ')}` : 'Saved.');
  }

  clear(link: LinkName): void {
    this.settings.clear(link);
    this.drafts[link] = '';
    this.notice.set('Cleared: the server\'s address is in force, if it sets one.');
  }

  private showReadiness(r: Readiness): void {
    this.ready.set(r);
    this.parts.set(Object.entries(r.parts ?? {}));
  }
}
