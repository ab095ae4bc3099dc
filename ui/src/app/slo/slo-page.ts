import { Component, computed, inject, signal } from '@angular/core';
import { ChartConfiguration } from 'chart.js';

import { describeError } from '../api/errors';
import { Objective, SloApi } from '../api/slo';
import { ChartView } from '../shared/chart';
import { clock } from '../shared/format';
import { live } from '../shared/live';
import { ConsoleSettings } from '../shared/settings';

/** How many readings the charts keep (one every 2 s: ten minutes). */
const KEEP = 300;

/** The SLOs, sorted by remaining error budget (least first), with burn rates and charts of what this page has seen. */
@Component({
  selector: 'app-slo-page',
  imports: [ChartView],
  template: `
    <h1>SLOs</h1>
    <p class="muted">Figures from {{ source() }}; charts since this page opened.
      @if (settings.grafanaUrl()) { <a [href]="settings.grafanaUrl() + '/dashboards'" target="_blank" rel="noopener">Grafana dashboards</a> } @else { <span>(set a Grafana address on the runtime page to link its dashboards)</span> }
    </p>
    @if (error()) { <p class="error" role="alert">{{ error() }}</p> }
    @for (o of sorted(); track o.name) {
      <section [attr.aria-labelledby]="'slo-' + o.name" class="objective">
        <h2 [id]="'slo-' + o.name">{{ o.name }}
          <span [class]="'status ' + (o.breaching ? 'failed' : 'succeeded')" [attr.data-testid]="'slo-state-' + o.name">{{ o.breaching ? 'breaching' : 'ok' }}</span>
        </h2>
        <p>{{ o.kind === 'latency' ? 'latency' : 'success ratio' }} objective {{ pct(o.objective) }} over {{ o.window }} ·
          now {{ o.current === null ? 'no data' : pct(o.current) }} ·
          budget left <strong [attr.data-testid]="'slo-budget-' + o.name">{{ o.errorBudgetRemaining === null ? 'no data' : pct(o.errorBudgetRemaining) }}</strong> ·
          {{ o.ordersLastHour ?? 0 }} orders in the last hour@if (!o.enoughTraffic) { (too few for alerts)}</p>
        <table [attr.aria-label]="'Burn rates of ' + o.name">
          <thead><tr><th scope="col">Alert</th><th scope="col">Windows</th><th scope="col">Burn rate (long / short)</th><th scope="col">Fires above</th><th scope="col">Firing</th></tr></thead>
          <tbody>
            @for (b of o.burnRates; track b.alert) {
              <tr><td>{{ b.alert }} ({{ b.severity }})</td><td>{{ b.long }} / {{ b.short }}</td><td>{{ num(b.longBurnRate) }} / {{ num(b.shortBurnRate) }}</td><td>{{ b.threshold }}×</td><td>{{ b.firing ? 'yes' : 'no' }}</td></tr>
            }
          </tbody>
        </table>
        <app-chart [config]="chartOf(o.name)" [label]="'History of ' + o.name + ' on this page'" [summary]="summaryOf(o.name)" />
      </section>
    } @empty { <p class="muted">No objective is declared ([[slo.objectives]] in streams-analytics.toml).</p> }
  `,
  styles: `.objective { border-top: 1px solid var(--line); padding-top: 0.4rem; }`,
})
export class SloPage {
  private readonly api = inject(SloApi);
  readonly settings = inject(ConsoleSettings);
  readonly objectives = signal<Objective[]>([]);
  readonly source = signal('');
  readonly error = signal('');
  /** Readings by objective: time, value, budget left, short burn rate of the fast alert. */
  readonly history = signal<Record<string, { at: number; current: number | null; budget: number | null; burn: number | null }[]>>({});
  readonly sorted = computed(() =>
    [...this.objectives()].sort((a, b) => (a.errorBudgetRemaining ?? 1) - (b.errorBudgetRemaining ?? 1)),
  );

  constructor() {
    live(() =>
      this.api.view().subscribe({
        next: (view) => {
          this.objectives.set(view.objectives);
          this.source.set(view.source);
          this.error.set('');
          const at = Date.now();
          this.history.update((h) => {
            const next = { ...h };
            for (const o of view.objectives) {
              const reading = { at, current: o.current, budget: o.errorBudgetRemaining, burn: o.burnRates[0]?.shortBurnRate ?? null };
              next[o.name] = [...(next[o.name] ?? []), reading].slice(-KEEP);
            }
            return next;
          });
        },
        error: (e: unknown) => this.error.set(describeError(e)),
      }),
    );
  }

  pct(ratio: number): string {
    return `${(ratio * 100).toFixed(2)}%`;
  }

  num(value: number | null): string {
    return value === null ? '–' : value.toFixed(2);
  }

  chartOf(name: string): ChartConfiguration {
    const readings = this.history()[name] ?? [];
    return {
      type: 'line',
      data: {
        labels: readings.map((r) => clock(r.at)),
        datasets: [
          { label: 'value (%)', data: readings.map((r) => (r.current === null ? null : r.current * 100)), borderColor: '#0969da', yAxisID: 'y' },
          { label: 'budget left (%)', data: readings.map((r) => (r.budget === null ? null : r.budget * 100)), borderColor: '#2da44e', yAxisID: 'y' },
          { label: 'burn rate (5m)', data: readings.map((r) => r.burn), borderColor: '#cf222e', yAxisID: 'burn' },
        ],
      },
      options: { scales: { y: { position: 'left' }, burn: { position: 'right', beginAtZero: true } } },
    };
  }

  summaryOf(name: string): string {
    const last = (this.history()[name] ?? []).at(-1);
    return last ? `last reading ${clock(last.at)}: value ${last.current === null ? 'no data' : this.pct(last.current)}, burn rate ${this.num(last.burn)}` : 'no reading yet';
  }
}
