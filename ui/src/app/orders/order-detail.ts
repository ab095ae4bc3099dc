import { Component, computed, inject, input, signal } from '@angular/core';
import { RouterLink } from '@angular/router';

import { describeError } from '../api/errors';
import { Order, OrdersApi } from '../api/orders';
import { clock, duration, money } from '../shared/format';
import { live } from '../shared/live';
import { timeline } from './timeline';

/** One order: status, items, total, and its saga as a timeline; refreshed until it ends. */
@Component({
  selector: 'app-order-detail',
  imports: [RouterLink],
  template: `
    <p><a routerLink="/orders">← Orders</a></p>
    @if (error()) { <p class="error" role="alert">{{ error() }}</p> }
    @if (order(); as o) {
      <h1>Order <span class="mono">{{ o.orderId }}</span></h1>
      <dl class="facts">
        <dt>Status</dt><dd class="with-reason"><span [class]="'status ' + o.status" data-testid="order-status">{{ o.status }}</span><span class="muted">{{ o.reason ?? '' }}</span></dd>
        <dt>Customer</dt><dd>{{ o.customerId }}</dd>
        <dt>Total</dt><dd>{{ money(o.total, o.currency) }}</dd>
        <dt>Ship to</dt><dd>{{ o.shipTo.country }}</dd>
        <dt>Placed</dt><dd>{{ clock(o.createdAtMs) }} <span class="muted">(last change {{ duration(o.updatedAtMs - o.createdAtMs) }} later)</span></dd>
      </dl>
      <h2>Items</h2>
      <table aria-label="Items">
        <thead><tr><th scope="col">SKU</th><th scope="col">Quantity</th><th scope="col">Unit price</th></tr></thead>
        <tbody>
          @for (item of o.items; track $index) {
            <tr><td>{{ item.sku }}</td><td>{{ item.quantity }}</td><td>{{ money(item.unitPrice, o.currency) }}</td></tr>
          }
        </tbody>
      </table>
      <h2>Saga</h2>
      <ol class="timeline" aria-label="Saga timeline">
        @for (row of rows(); track row.phase + row.step) {
          <li [class]="row.phase">
            <span class="step">{{ row.phase === 'compensation' ? 'undo ' + row.step : row.step }}</span>
            <span [class]="'status ' + row.outcome">{{ row.outcome }}</span>
            <span class="muted">at +{{ duration(row.startedAfterMs) }}@if (row.tookMs !== null) {, took {{ duration(row.tookMs) }}}@if (row.attempts > 1) {, {{ row.attempts }} attempts}</span>
            @if (row.detail) { <span class="detail">{{ row.detail }}</span> }
          </li>
        } @empty {
          <li class="muted">Nothing happened yet: the saga has not started.</li>
        }
      </ol>
    } @else if (!error()) {
      <p class="muted">Loading…</p>
    }
  `,
  styles: `
    .facts { display: grid; grid-template-columns: max-content 1fr; gap: 0.3rem 1rem; }
    .facts dt { color: var(--muted); }
    .facts dd { margin: 0; }
    .with-reason { display: flex; gap: 0.6rem; align-items: baseline; }
    .timeline { list-style: none; padding: 0; border-left: 3px solid var(--line); margin-left: 0.5rem; }
    .timeline li { display: flex; flex-wrap: wrap; gap: 0.6rem; align-items: baseline; padding: 0.35rem 0 0.35rem 1rem; }
    .timeline li.compensation { margin-left: 1.5rem; }
    .timeline li.end { font-weight: 600; }
    .step { min-width: 8rem; }
    .detail { color: var(--muted); font-size: 0.9em; }
  `,
})
export class OrderDetail {
  private readonly api = inject(OrdersApi);
  /** The route's `:id`. */
  readonly id = input.required<string>();
  readonly order = signal<Order | null>(null);
  readonly error = signal('');
  readonly rows = computed(() => {
    const o = this.order();
    return o ? timeline(o.history ?? [], o.createdAtMs) : [];
  });
  readonly money = money;
  readonly clock = clock;
  readonly duration = duration;

  constructor() {
    live(() => {
      const current = this.order();
      // An order that ended changes no more.
      if (current && current.status !== 'PENDING' && current.orderId === this.id()) return;
      this.api.get(this.id()).subscribe({
        next: (o) => {
          this.order.set(o);
          this.error.set('');
        },
        error: (e: unknown) => this.error.set(describeError(e)),
      });
    });
  }
}
