import { Component, computed, input } from '@angular/core';

import { SagaDefinition } from '../api/sagas';
import { TimelineRow } from './timeline';

/** How a box of the graph is drawn: the path the order took is coloured, the rest grey. */
type Mark = 'ok' | 'bad' | 'undone' | 'open' | 'none';

interface Box {
  x: number;
  y: number;
  label: string;
  mark: Mark;
}

const W = 130;
const H = 40;
const GAP = 40;

/**
 * The saga as `runner graph` draws it — steps left to right, each compensation below its
 * step — with this order's path coloured: succeeded steps green, the failed one red,
 * compensated ones amber, what it never reached grey.
 */
@Component({
  selector: 'app-saga-graph',
  template: `
    <svg [attr.viewBox]="'0 0 ' + width() + ' 150'" [attr.width]="width()" height="150" role="img" [attr.aria-label]="summary()">
      <title>{{ summary() }}</title>
      @for (b of boxes(); track $index) {
        <rect [attr.x]="b.x" [attr.y]="b.y" [attr.width]="w" [attr.height]="h" rx="6" [class]="b.mark" />
        <text [attr.x]="b.x + w / 2" [attr.y]="b.y + h / 2 + 5" text-anchor="middle">{{ b.label }}</text>
      }
      @for (a of arrows(); track $index) {
        <line [attr.x1]="a[0]" [attr.y1]="a[1]" [attr.x2]="a[2]" [attr.y2]="a[3]" class="arrow" />
      }
    </svg>
  `,
  styles: `
    rect { stroke-width: 2; }
    rect.ok { fill: #dafbe1; stroke: #116329; }
    rect.bad { fill: #ffebe9; stroke: #a40e26; }
    rect.undone { fill: #fff8c5; stroke: #7d4e00; }
    rect.open { fill: #ddf4ff; stroke: #0b5cad; stroke-dasharray: 4 3; }
    rect.none { fill: #f6f8fa; stroke: #afb8c1; }
    text { font-size: 13px; fill: #1b1f24; }
    .arrow { stroke: #57606a; stroke-width: 1.5; }
  `,
})
export class SagaGraph {
  readonly saga = input.required<SagaDefinition>();
  readonly rows = input.required<TimelineRow[]>();
  readonly status = input.required<string>();
  readonly w = W;
  readonly h = H;

  private mark(step: string, phase: 'forward' | 'compensation'): Mark {
    const row = this.rows().find((r) => r.step === step && r.phase === phase);
    if (!row) return 'none';
    if (['succeeded', 'compensated'].includes(row.outcome)) return phase === 'forward' ? 'ok' : 'undone';
    if (['requested', 'compensating'].includes(row.outcome)) return 'open';
    return 'bad';
  }

  readonly boxes = computed<Box[]>(() => {
    const steps = this.saga().steps;
    const boxes: Box[] = steps.map((s, i) => ({ x: 10 + i * (W + GAP), y: 10, label: s.name, mark: this.mark(s.name, 'forward') }));
    steps.forEach((s, i) => {
      if (s.compensation) boxes.push({ x: 10 + i * (W + GAP), y: 90, label: `undo ${s.name}`, mark: this.mark(s.name, 'compensation') });
    });
    const status = this.status();
    const end: Mark = status === 'COMPLETED' ? 'ok' : status === 'PENDING' ? 'none' : 'bad';
    boxes.push({ x: 10 + steps.length * (W + GAP), y: 10, label: status.toLowerCase(), mark: end });
    return boxes;
  });

  readonly arrows = computed(() => {
    const n = this.saga().steps.length;
    const arrows: [number, number, number, number][] = [];
    for (let i = 0; i < n; i++) arrows.push([10 + i * (W + GAP) + W, 30, 10 + (i + 1) * (W + GAP), 30]);
    this.saga().steps.forEach((s, i) => {
      if (s.compensation) arrows.push([10 + i * (W + GAP) + W / 2, 50, 10 + i * (W + GAP) + W / 2, 90]);
    });
    return arrows;
  });

  readonly width = computed(() => 20 + (this.saga().steps.length + 1) * (W + GAP));

  readonly summary = computed(() => {
    const parts = this.boxes().filter((b) => b.mark !== 'none').map((b) => `${b.label}: ${b.mark}`);
    return `Saga ${this.saga().name}, this order's path: ${parts.join(', ') || 'not started'}`;
  });
}
