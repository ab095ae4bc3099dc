/**
 * The SLO page's charts of an objective's history: its value against the objective, the error
 * budget left, and the burn rate of each alert window against the alert's threshold. Pure
 * functions from the API's figures to chart.js configurations and their text summaries.
 */
import { ChartConfiguration, ChartDataset, ScaleOptions } from 'chart.js';

import { Objective, SloSample } from '../api/slo';
import { clock } from '../shared/format';

/** The thresholds of the multi-window burn-rate alerts by long window, when the view names none. */
export const ALERT_THRESHOLDS: Readonly<Record<string, number>> = { '1h': 14.4, '6h': 6, '3d': 1 };

const WINDOW_COLOURS = ['#cf222e', '#9a6700', '#8250df', '#1a7f37'];

/** The threshold of the alert whose long window is `window`: the view's own, else the usual one. */
export function thresholdOf(objective: Objective | undefined, window: string): number | null {
  const named = objective?.burnRates.find((b) => b.long === window)?.threshold;
  return named ?? ALERT_THRESHOLDS[window] ?? null;
}

/** What the charts are drawn over: the range's first and last instant. */
export interface ChartRange {
  fromMs: number;
  toMs: number;
}

/** Ticks of the time axis at round times: about six over the range. */
function tickStepMs(spanMs: number): number {
  const steps = [1, 2, 5, 10, 15, 30, 60, 120, 240, 360, 720].map((m) => m * 60_000);
  return steps.find((step) => spanMs / step <= 7) ?? steps[steps.length - 1];
}

/** A tick's time: to the minute over ranges longer than an hour. */
function tickLabel(ms: number, spanMs: number): string {
  return spanMs > 3_600_000 ? clock(ms).slice(0, 5) : clock(ms);
}

export interface ObjectiveCharts {
  value: ChartConfiguration;
  valueSummary: string;
  budget: ChartConfiguration;
  budgetSummary: string;
  burn: ChartConfiguration;
  burnSummary: string;
}

type Point = { x: number; y: number | null };

function percent(ratio: number | null): number | null {
  return ratio === null ? null : ratio * 100;
}

function shown(ratio: number | null | undefined): string {
  return ratio === null || ratio === undefined ? 'no data' : `${(ratio * 100).toFixed(2)}%`;
}

/** A horizontal reference line across the range, dashed. */
function reference(label: string, y: number, range: ChartRange, colour: string): ChartDataset<'line', Point[]> {
  return {
    label,
    data: [
      { x: range.fromMs, y },
      { x: range.toMs, y },
    ],
    borderColor: colour,
    backgroundColor: colour,
    borderDash: [6, 4],
    borderWidth: 1,
    pointRadius: 0,
  };
}

function line(label: string, data: Point[], colour: string): ChartDataset<'line', Point[]> {
  return { label, data, borderColor: colour, backgroundColor: colour, pointRadius: 0, borderWidth: 2 };
}

function chart(datasets: ChartDataset<'line', Point[]>[], range: ChartRange, y: ScaleOptions<'linear'>): ChartConfiguration {
  const span = range.toMs - range.fromMs;
  const config: ChartConfiguration<'line', Point[]> = {
    type: 'line',
    data: { datasets },
    options: {
      scales: {
        x: {
          type: 'linear',
          min: range.fromMs,
          max: range.toMs,
          afterBuildTicks: (axis) => {
            // Round times only; the ends of the range are not labelled.
            const step = tickStepMs(span);
            axis.ticks = [];
            for (let at = Math.ceil(range.fromMs / step) * step; at <= range.toMs; at += step) axis.ticks.push({ value: at });
          },
          ticks: { callback: (v) => tickLabel(Number(v), span) },
        },
        y,
      },
      plugins: { tooltip: { callbacks: { title: (items) => (items[0] ? clock(items[0].parsed.x ?? 0) : '') } } },
    },
  };
  return config;
}

/** The three charts of one objective over `range`, from its samples (oldest first). */
export function objectiveCharts(objective: Objective, samples: SloSample[], windows: string[], range: ChartRange): ObjectiveCharts {
  const last = samples.at(-1);
  const first = samples[0];

  const value = chart(
    [
      line('value (%)', samples.map((s) => ({ x: s.atMs, y: percent(s.current) })), '#0969da'),
      reference(`objective ${shown(objective.objective)}`, objective.objective * 100, range, '#57606a'),
    ],
    range,
    { title: { display: true, text: '%' } },
  );
  const valueSummary = last
    ? `${clock(last.atMs)}: ${shown(last.current)} against the objective ${shown(objective.objective)}`
    : 'no samples yet';

  const budget = chart(
    [line('error budget left (%)', samples.map((s) => ({ x: s.atMs, y: percent(s.errorBudgetRemaining) })), '#1a7f37')],
    range,
    { suggestedMin: 0, suggestedMax: 100, title: { display: true, text: '%' } },
  );
  const budgetSummary = last
    ? `budget left ${shown(first?.errorBudgetRemaining)} at ${clock(first.atMs)}, ${shown(last.errorBudgetRemaining)} at ${clock(last.atMs)}`
    : 'no samples yet';

  const burnLines: ChartDataset<'line', Point[]>[] = [];
  const burnWords: string[] = [];
  windows.forEach((window, i) => {
    const colour = WINDOW_COLOURS[i % WINDOW_COLOURS.length];
    burnLines.push(line(`burn rate ${window}`, samples.map((s) => ({ x: s.atMs, y: s.burnRates[i] ?? null })), colour));
    const threshold = thresholdOf(objective, window);
    if (threshold !== null) burnLines.push(reference(`alert above ${threshold} (${window})`, threshold, range, colour));
    const rate = last?.burnRates[i];
    burnWords.push(`${window} ${rate === null || rate === undefined ? 'no data' : rate.toFixed(2)}${threshold === null ? '' : ` (alert above ${threshold})`}`);
  });
  const burn = chart(burnLines, range, { beginAtZero: true, title: { display: true, text: '× budget rate' } });
  const burnSummary = last ? `burn rates at ${clock(last.atMs)}: ${burnWords.join(', ')}` : 'no samples yet';

  return { value, valueSummary, budget, budgetSummary, burn, burnSummary };
}
