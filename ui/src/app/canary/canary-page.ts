import { Component, computed, inject, signal } from '@angular/core';
import { FormsModule } from '@angular/forms';
import { ChartConfiguration } from 'chart.js';

import { CanaryApi, CanaryState, StepFigures } from '../api/canary';
import { describeError } from '../api/errors';
import { ChartView } from '../shared/chart';
import { clock } from '../shared/format';
import { live } from '../shared/live';

/** The canary: percentage in force with a control, outcomes and latency by variant, the analysis's decisions. */
@Component({
  selector: 'app-canary-page',
  imports: [FormsModule, ChartView],
  template: `
    <h1>Canary</h1>
    @if (error()) { <p class="error" role="alert">{{ error() }}</p> }
    @for (c of canaries(); track c.step) {
      <section [attr.aria-labelledby]="'canary-' + c.step">
        <h2 [id]="'canary-' + c.step">Step {{ c.step }} ({{ c.service }})</h2>
        <p><strong data-testid="canary-percent">{{ c.percent }}%</strong> of orders go to <code>{{ c.topic }}</code> · {{ c.phase }} · set by {{ c.setBy }} at {{ clock(c.setAtMs) }}</p>
        <form class="set" (ngSubmit)="set(c.step)">
          <label>New percentage<input name="percent" type="number" min="0" max="100" step="1" [(ngModel)]="percent" required /></label>
          <label>Reason<input name="reason" [(ngModel)]="reason" /></label>
          <button class="primary" type="submit">Set</button>
        </form>
        <div class="charts">
          <app-chart [config]="outcomesChart()" label="Outcomes of the step by variant" [summary]="outcomesSummary()" />
          <app-chart [config]="latencyChart()" label="Step latency by variant, last 5 minutes" [summary]="latencySummary()" />
        </div>
        <h3>Decisions</h3>
        <table aria-label="Canary decisions">
          <thead><tr><th scope="col">When</th><th scope="col">Change</th><th scope="col">By</th><th scope="col">Reason</th></tr></thead>
          <tbody>
            @for (e of c.events; track $index) {
              <tr><td>{{ clock(e.atMs) }}</td><td>{{ e.from }}% → {{ e.to }}%</td><td>{{ e.by }}</td><td>{{ e.reason }}</td></tr>
            } @empty { <tr><td colspan="4" class="muted">No change yet.</td></tr> }
          </tbody>
        </table>
      </section>
    } @empty {
      <p class="muted">No saga here has a canary step.</p>
    }
  `,
  styles: `
    .set { display: flex; gap: 0.6rem; align-items: flex-end; margin-bottom: 1rem; }
    .charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(24rem, 1fr)); gap: 1rem; }
    h3 { font-size: 1rem; }
  `,
})
export class CanaryPage {
  private readonly api = inject(CanaryApi);
  readonly canaries = signal<CanaryState[]>([]);
  readonly steps = signal<StepFigures[]>([]);
  readonly error = signal('');
  readonly clock = clock;
  percent = 10;
  reason = '';

  /** The figures of the first canary step (the shipped saga has one). */
  private readonly mine = computed(() => {
    const step = this.canaries()[0]?.step;
    return this.steps().filter((s) => s.step === step);
  });

  readonly outcomesChart = computed<ChartConfiguration>(() => {
    const o = this.canaries()[0]?.outcomes ?? { stable: { success: 0, failure: 0 }, canary: { success: 0, failure: 0 } };
    return {
      type: 'bar',
      data: {
        labels: ['stable', 'canary'],
        datasets: [
          { label: 'success', data: [o.stable.success, o.canary.success], backgroundColor: '#2da44e' },
          { label: 'failure', data: [o.stable.failure, o.canary.failure], backgroundColor: '#cf222e' },
        ],
      },
      options: { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } },
    };
  });

  readonly outcomesSummary = computed(() => {
    const o = this.canaries()[0]?.outcomes;
    if (!o) return '';
    return `stable ${o.stable.success} ok / ${o.stable.failure} failed; canary ${o.canary.success} ok / ${o.canary.failure} failed (analysis window)`;
  });

  readonly latencyChart = computed<ChartConfiguration>(() => {
    const byVariant = (v: string) => this.mine().find((s) => s.variant === v)?.latencyMs;
    const stable = byVariant('stable');
    const canary = byVariant('canary');
    return {
      type: 'bar',
      data: {
        labels: ['p50', 'p95', 'p99'],
        datasets: [
          { label: 'stable (ms)', data: [stable?.p50 ?? 0, stable?.p95 ?? 0, stable?.p99 ?? 0], backgroundColor: '#0969da' },
          { label: 'canary (ms)', data: [canary?.p50 ?? 0, canary?.p95 ?? 0, canary?.p99 ?? 0], backgroundColor: '#bf8700' },
        ],
      },
      options: { scales: { y: { beginAtZero: true } } },
    };
  });

  readonly latencySummary = computed(() =>
    this.mine()
      .map((s) => `${s.variant}: p50 ${s.latencyMs.p50 ?? '–'} ms, p99 ${s.latencyMs.p99 ?? '–'} ms, ${Math.round(s.failureRatio * 100)}% failed of ${s.latencyMs.count}`)
      .join('; '),
  );

  constructor() {
    live(() => {
      this.api.state().subscribe({ next: (s) => this.canaries.set(s.canaries), error: (e: unknown) => this.error.set(describeError(e)) });
      this.api.steps().subscribe({ next: (s) => this.steps.set(s), error: () => {} });
    });
  }

  set(step: string): void {
    this.error.set('');
    this.api.set(step, Number(this.percent), this.reason || 'set from the console').subscribe({
      next: () => this.api.state().subscribe((s) => this.canaries.set(s.canaries)),
      error: (e: unknown) => this.error.set(describeError(e)),
    });
  }
}
