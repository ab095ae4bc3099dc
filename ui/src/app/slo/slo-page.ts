import { Component, computed, inject, signal } from '@angular/core';
import { FormsModule } from '@angular/forms';

import { describeError } from '../api/errors';
import { Objective, SloApi, SloHistory, SloSample } from '../api/slo';
import { ChartView } from '../shared/chart';
import { live } from '../shared/live';
import { ConsoleSettings } from '../shared/settings';
import { ObjectiveCharts, objectiveCharts } from './slo-charts';

/** The ranges the charts offer, in minutes. */
export const RANGES = [
  { minutes: 15, label: '15 min' },
  { minutes: 60, label: '1 h' },
  { minutes: 360, label: '6 h' },
  { minutes: 1440, label: '24 h' },
] as const;

/** The history is sampled every 10 s; asking more often shows nothing new. */
const HISTORY_EVERY_MS = 10_000;

/** What an objective's charts depend on besides its samples: its target and alert thresholds. */
function chartedPart(objectives: Objective[]): string {
  return JSON.stringify(objectives.map((o) => [o.name, o.objective, o.burnRates.map((b) => [b.long, b.threshold])]));
}

/**
 * The SLOs, sorted by remaining error budget (least first), with burn rates, and charts of the
 * history streams-analytics keeps (value against objective, budget left, burn rates against
 * their alert thresholds) over a chosen range.
 */
@Component({
  selector: 'app-slo-page',
  imports: [ChartView, FormsModule],
  template: `
    <h1>SLOs</h1>
    <p class="muted">Figures from {{ source() }}; charts of the history streams-analytics keeps in memory (24 h at most, from its last start).
      @if (settings.grafanaUrl()) { <a [href]="settings.grafanaUrl() + '/dashboards'" target="_blank" rel="noopener">Grafana dashboards</a> } @else { <span>(set a Grafana address on the runtime page to link its dashboards)</span> }
    </p>
    <label class="range">Range of the charts
      <select name="range" [ngModel]="minutes()" (ngModelChange)="setRange($event)">
        @for (r of ranges; track r.minutes) { <option [ngValue]="r.minutes">last {{ r.label }}</option> }
      </select>
    </label>
    @if (error() || historyError()) {
      <div class="error" role="alert">
        @if (error()) { <p>{{ error() }}</p> }
        @if (historyError()) { <p>history: {{ historyError() }}</p> }
      </div>
    }
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
        @if (charts()[o.name]; as c) {
          <div class="charts">
            <app-chart [config]="c.value" [label]="o.name + ': value against the objective, ' + rangeLabel()" [summary]="c.valueSummary" />
            <app-chart [config]="c.budget" [label]="o.name + ': error budget left, ' + rangeLabel()" [summary]="c.budgetSummary" />
            <app-chart [config]="c.burn" [label]="o.name + ': burn rates against their alert thresholds, ' + rangeLabel()" [summary]="c.burnSummary" />
          </div>
        } @else if (history()) {
          <p class="muted" [attr.data-testid]="'slo-history-' + o.name">No samples yet in the {{ rangeLabel() }}.</p>
        }
      </section>
    } @empty { <p class="muted">No objective is declared ([[slo.objectives]] in streams-analytics.toml).</p> }
  `,
  styles: `
    .objective { border-top: 1px solid var(--line); padding-top: 0.4rem; }
    .range { margin-bottom: 0.6rem; }
    .charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(20rem, 1fr)); gap: 1rem; margin-top: 0.8rem; }
  `,
})
export class SloPage {
  private readonly api = inject(SloApi);
  readonly settings = inject(ConsoleSettings);
  readonly ranges = RANGES;
  readonly objectives = signal<Objective[]>([]);
  readonly source = signal('');
  readonly error = signal('');
  readonly historyError = signal('');
  /** The range of the charts, in minutes. */
  readonly minutes = signal(60);
  /** The last history read, with the range it was asked for and when it came. */
  readonly history = signal<(SloHistory & { minutes: number; atMs: number }) | null>(null);
  readonly sorted = computed(() =>
    [...this.objectives()].sort((a, b) => (a.errorBudgetRemaining ?? 1) - (b.errorBudgetRemaining ?? 1)),
  );
  readonly rangeLabel = computed(() => {
    const minutes = this.history()?.minutes ?? this.minutes();
    return `last ${RANGES.find((r) => r.minutes === minutes)?.label ?? `${minutes} min`}`;
  });

  /** The objectives as charted: the live view repeats them every round, redrawn only when they change. */
  private readonly charted = computed(() => this.objectives(), { equal: (a, b) => chartedPart(a) === chartedPart(b) });

  /** The charts of each objective that has samples in the range. */
  readonly charts = computed<Record<string, ObjectiveCharts>>(() => {
    const history = this.history();
    if (!history) return {};
    const range = { fromMs: history.atMs - history.minutes * 60_000, toMs: history.atMs };
    const charts: Record<string, ObjectiveCharts> = {};
    for (const objective of this.charted()) {
      const samples = (history.objectives.find((h) => h.name === objective.name)?.samples ?? []).filter(
        (s): s is SloSample => typeof s?.atMs === 'number',
      );
      if (samples.length) charts[objective.name] = objectiveCharts(objective, samples, history.burnWindows ?? [], range);
    }
    return charts;
  });

  constructor() {
    live(() =>
      this.api.view().subscribe({
        next: (view) => {
          this.objectives.set(view.objectives);
          this.source.set(view.source);
          this.error.set('');
        },
        error: (e: unknown) => this.error.set(describeError(e)),
      }),
    );
    live(() => this.loadHistory(), HISTORY_EVERY_MS);
  }

  setRange(minutes: number): void {
    this.minutes.set(Number(minutes));
    this.loadHistory();
  }

  /** Reads the history of the range chosen; an answer for a range no longer chosen is dropped. */
  loadHistory(): void {
    const minutes = this.minutes();
    this.api.history(minutes).subscribe({
      next: (history) => {
        if (minutes !== this.minutes()) return;
        this.history.set({ ...history, minutes, atMs: Date.now() });
        this.historyError.set('');
      },
      error: (e: unknown) => {
        if (minutes === this.minutes()) this.historyError.set(describeError(e));
      },
    });
  }

  pct(ratio: number): string {
    return `${(ratio * 100).toFixed(2)}%`;
  }

  num(value: number | null): string {
    return value === null ? '–' : value.toFixed(2);
  }
}
