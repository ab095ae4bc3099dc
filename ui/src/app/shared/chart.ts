import { Component, ElementRef, OnDestroy, effect, input, viewChild } from '@angular/core';
import { Chart, ChartConfiguration, registerables } from 'chart.js';

Chart.register(...registerables);

/**
 * A chart.js chart of `config`, redrawn (data and options) when it changes. The canvas carries
 * `label` for screen readers, and `summary` is shown as text beside it (the figures a chart
 * cannot say).
 */
@Component({
  selector: 'app-chart',
  template: `
    <figure>
      <div class="box"><canvas #canvas role="img" [attr.aria-label]="label()"></canvas></div>
      <figcaption>{{ summary() }}</figcaption>
    </figure>
  `,
  styles: `
    figure { margin: 0; }
    .box { position: relative; height: 220px; }
    figcaption { font-size: 0.85rem; color: var(--muted); }
  `,
})
export class ChartView implements OnDestroy {
  readonly config = input.required<ChartConfiguration>();
  readonly label = input.required<string>();
  readonly summary = input('');
  private readonly canvas = viewChild.required<ElementRef<HTMLCanvasElement>>('canvas');
  private chart?: Chart;

  constructor() {
    effect(() => {
      const config = this.config();
      const options = { animation: false, maintainAspectRatio: false, ...config.options } as const;
      if (this.chart) {
        this.chart.data = config.data;
        this.chart.options = options;
        this.chart.update('none');
      } else {
        this.chart = new Chart(this.canvas().nativeElement, { ...config, options });
      }
    });
  }

  ngOnDestroy(): void {
    this.chart?.destroy();
  }
}
