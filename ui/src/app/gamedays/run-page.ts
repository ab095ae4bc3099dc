import { Component, computed, inject, input, signal } from '@angular/core';
import { RouterLink } from '@angular/router';

import { describeError } from '../api/errors';
import { GamedaysApi, RunState } from '../api/gamedays';
import { duration } from '../shared/format';
import { live } from '../shared/live';

/** One game-day run, live: phase, progress, orders, burn rate, faults; abort; then verdict, audit and report. */
@Component({
  selector: 'app-run-page',
  imports: [RouterLink],
  template: `
    <p><a routerLink="/gamedays">← Game days</a></p>
    @if (error()) { <p class="error" role="alert">{{ error() }}</p> }
    @if (run(); as r) {
      <h1>{{ r.scenario }} <span class="mono muted">{{ r.id.slice(0, 8) }}</span></h1>
      <p><span [class]="'status ' + r.state" data-testid="run-state">{{ r.state }}</span> {{ r.verdict?.summary ?? '' }}</p>
      @if (!over()) {
        <p>
          <progress [value]="r.elapsedMs" [max]="r.plannedMs ?? 1" aria-label="Elapsed"></progress>
          {{ duration(r.elapsedMs) }} of {{ duration(r.plannedMs ?? 0) }} · phase {{ r.phase ?? '–' }} · {{ r.rate?.toFixed(1) }} orders/s · burn rate {{ r.burnRate?.toFixed(2) ?? '–' }}
        </p>
        <button type="button" (click)="abort()">Abort</button>
      }
      <h2>Orders</h2>
      <p>{{ r.orders.accepted }} accepted, {{ r.orders.settled }} settled ({{ r.orders.completed }} completed, {{ r.orders.cancelled }} cancelled, {{ r.orders.failed }} failed), {{ r.orders.unexpected }} not as expected, {{ r.orders.refused }} refused</p>
      <h2>Faults</h2>
      <table aria-label="Faults">
        <thead><tr><th scope="col">Fault</th><th scope="col">What</th><th scope="col">State</th><th scope="col">Injections</th></tr></thead>
        <tbody>
          @for (f of r.faults ?? []; track f.name) {
            <tr><td>{{ f.name }}</td><td>{{ f.summary }}</td><td>{{ f.state }} <span class="error">{{ f.error ?? '' }}</span></td><td>{{ f.injections }}</td></tr>
          } @empty { <tr><td colspan="4" class="muted">No fault in this scenario.</td></tr> }
        </tbody>
      </table>
      @if (r.stop) { <p class="error">Stopped at {{ duration(r.stop.atMs) }}: {{ r.stop.condition }} ({{ r.stop.detail }})</p> }
      @if (over()) {
        <h2>Audit</h2>
        <table aria-label="Audit">
          <thead><tr><th scope="col">Check</th><th scope="col">Result</th><th scope="col">Figures</th></tr></thead>
          <tbody>
            @for (c of r.audit ?? []; track c.name) {
              <tr><td class="mono">{{ c.name }}</td><td><span [class]="'status ' + (c.passed ? 'succeeded' : 'failed')">{{ c.passed ? 'passed' : 'failed' }}</span></td><td>{{ c.detail }}</td></tr>
            }
          </tbody>
        </table>
        <p><a [href]="report()" target="_blank" rel="noopener">Open the report</a> · <a [href]="report() + '?format=md'">Markdown</a> · <a [href]="report() + '?format=json'">JSON</a></p>
      }
    } @else if (!error()) {
      <p class="muted">Loading…</p>
    }
  `,
  styles: `progress { width: 16rem; vertical-align: middle; }`,
})
export class RunPage {
  private readonly api = inject(GamedaysApi);
  readonly id = input.required<string>();
  readonly run = signal<RunState | null>(null);
  readonly error = signal('');
  readonly over = computed(() => !['running', 'auditing'].includes(this.run()?.state ?? 'running'));
  readonly report = computed(() => this.api.reportUrl(this.id()));
  readonly duration = duration;

  constructor() {
    live(() => {
      if (this.run() && this.over()) return;
      this.api.run(this.id()).subscribe({ next: (r) => this.run.set(r), error: (e: unknown) => this.error.set(describeError(e)) });
    }, 1000);
  }

  abort(): void {
    this.api.abort(this.id()).subscribe({ error: (e: unknown) => this.error.set(describeError(e)) });
  }
}
