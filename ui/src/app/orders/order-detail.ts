import { Component, computed, inject, input, signal } from '@angular/core';
import { RouterLink } from '@angular/router';

import { ChaosApi, Injection } from '../api/chaos';
import { DeadLetterSummary, DeadLettersApi } from '../api/dead-letters';
import { describeError } from '../api/errors';
import { Order, OrdersApi } from '../api/orders';
import { SagaDefinition, SagasApi } from '../api/sagas';
import { clock, duration, money } from '../shared/format';
import { live } from '../shared/live';
import { ConsoleSettings } from '../shared/settings';
import { SagaGraph } from './saga-graph';
import { timeline } from './timeline';

/** One order: status, items, total, and its saga as a timeline; refreshed until it ends. */
@Component({
  selector: 'app-order-detail',
  imports: [RouterLink, SagaGraph],
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
        <dt>Trace</dt><dd>@if (o.traceId) { @if (settings.traceLink(o.traceId); as link) { <a class="mono" [href]="link" target="_blank" rel="noopener">{{ o.traceId }}</a> } @else { <span class="mono" data-testid="trace-id">{{ o.traceId }}</span> } } @else { <span class="muted">none yet</span> }</dd>
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
      @if (saga(); as definition) { <app-saga-graph [saga]="definition" [rows]="rows()" [status]="o.status" /> }
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
      <h2>Faults injected into this order</h2>
      <table aria-label="Injections into this order">
        <thead><tr><th scope="col">When</th><th scope="col">Rule</th><th scope="col">Fault</th><th scope="col">Where</th></tr></thead>
        <tbody>
          @for (i of injections(); track $index) {
            <tr><td>{{ clock(i.atMs) }}</td><td class="mono">{{ i.rule }}</td><td>{{ i.fault }}</td><td>{{ i.service }} · {{ i.target }}</td></tr>
          } @empty { <tr><td colspan="4" class="muted">None.</td></tr> }
        </tbody>
      </table>
      <h2>Dead letters of this order</h2>
      <table aria-label="Dead letters of this order">
        <thead><tr><th scope="col">Entry</th><th scope="col">Topic</th><th scope="col">Kind</th><th scope="col">State</th></tr></thead>
        <tbody>
          @for (d of deadLetters(); track d.id) {
            <tr><td><a [routerLink]="['/dead-letters', d.id]">#{{ d.id }}</a></td><td class="mono">{{ d.topic }}</td><td>{{ d.errorKind }}</td><td>{{ d.state }}</td></tr>
          } @empty { <tr><td colspan="4" class="muted">None.</td></tr> }
        </tbody>
      </table>
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
  private readonly chaos = inject(ChaosApi);
  private readonly dlq = inject(DeadLettersApi);
  readonly settings = inject(ConsoleSettings);
  readonly saga = signal<SagaDefinition | null>(null);
  readonly injections = signal<Injection[]>([]);
  readonly deadLetters = signal<DeadLetterSummary[]>([]);
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
    inject(SagasApi)
      .list()
      .subscribe({ next: (s) => this.saga.set(s.sagas[0] ?? null), error: () => {} });
    live(() => {
      this.chaos.injections(200, this.id()).subscribe({ next: (r) => this.injections.set(r.injections), error: () => {} });
      this.dlq.entries({ q: this.id() }).subscribe({ next: (r) => this.deadLetters.set(r.entries), error: () => {} });
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
