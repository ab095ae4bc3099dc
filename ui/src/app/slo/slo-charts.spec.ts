// Unit tests of the SLO charts: series in percent, the objective and the alert thresholds
// drawn as reference lines over the whole range, summaries of the latest sample.
import { ChartDataset } from 'chart.js';

import { Objective, SloSample } from '../api/slo';
import { objectiveCharts, thresholdOf } from './slo-charts';

const OBJECTIVE: Objective = {
  name: 'order-success',
  kind: 'success',
  objective: 0.99,
  window: '30d',
  current: 0.995,
  errorRatio1h: null,
  burnRates: [{ alert: 'fast', severity: 'page', long: '1h', short: '5m', threshold: 14.4, longBurnRate: 1, shortBurnRate: 1, firing: false }],
  errorBudgetRemaining: 0.5,
  ordersLastHour: 10,
  enoughTraffic: true,
  breaching: false,
};

const SAMPLES: SloSample[] = [
  { atMs: 1_000_000, current: 0.98, errorBudgetRemaining: 0.9, burnRates: [2, 0.5, null] },
  { atMs: 1_010_000, current: null, errorBudgetRemaining: null, burnRates: [null, null, null] },
  { atMs: 1_020_000, current: 0.995, errorBudgetRemaining: 0.85, burnRates: [1.5, 0.4, 0.2] },
];

type Points = { x: number; y: number | null }[];
const points = (d: ChartDataset) => d.data as unknown as Points;

describe('thresholdOf', () => {
  it("takes the view's threshold of the window, else the usual one", () => {
    expect(thresholdOf({ ...OBJECTIVE, burnRates: [{ ...OBJECTIVE.burnRates[0], threshold: 10 }] }, '1h')).toBe(10);
    expect(thresholdOf(OBJECTIVE, '6h')).toBe(6);
    expect(thresholdOf(undefined, '3d')).toBe(1);
    expect(thresholdOf(OBJECTIVE, '2w')).toBeNull();
  });
});

describe('objectiveCharts', () => {
  const range = { fromMs: 900_000, toMs: 1_030_000 };
  const charts = objectiveCharts(OBJECTIVE, SAMPLES, ['1h', '6h', '3d'], range);

  it('draws the value in percent against the objective across the range', () => {
    const [value, objective] = charts.value.data.datasets;
    expect(points(value)).toEqual([
      { x: 1_000_000, y: 98 },
      { x: 1_010_000, y: null },
      { x: 1_020_000, y: 99.5 },
    ]);
    expect(objective.label).toBe('objective 99.00%');
    expect(points(objective)).toEqual([
      { x: 900_000, y: 99 },
      { x: 1_030_000, y: 99 },
    ]);
    expect(charts.value.options?.scales?.['x']?.min).toBe(900_000);
    expect(charts.value.options?.scales?.['x']?.max).toBe(1_030_000);
  });

  it('draws the budget left in percent', () => {
    expect(points(charts.budget.data.datasets[0]).map((p) => p.y)).toEqual([90, null, 85]);
    expect(charts.budgetSummary).toContain('90.00%');
    expect(charts.budgetSummary).toContain('85.00%');
  });

  it('draws each window’s burn rate with its alert threshold', () => {
    const sets = charts.burn.data.datasets;
    expect(sets.map((d) => d.label)).toEqual(['burn rate 1h', 'alert above 14.4 (1h)', 'burn rate 6h', 'alert above 6 (6h)', 'burn rate 3d', 'alert above 1 (3d)']);
    expect(points(sets[0]).map((p) => p.y)).toEqual([2, null, 1.5]);
    expect(points(sets[4]).map((p) => p.y)).toEqual([null, null, 0.2]);
    expect(points(sets[3])).toEqual([
      { x: 900_000, y: 6 },
      { x: 1_030_000, y: 6 },
    ]);
    expect(charts.burnSummary).toContain('1h 1.50 (alert above 14.4), 6h 0.40 (alert above 6), 3d 0.20 (alert above 1)');
  });

  it('says there is nothing to show without samples', () => {
    const empty = objectiveCharts(OBJECTIVE, [], ['1h'], range);
    expect([empty.valueSummary, empty.budgetSummary, empty.burnSummary]).toEqual(['no samples yet', 'no samples yet', 'no samples yet']);
  });
});
