import { Component, inject, signal } from '@angular/core';
import { FormsModule } from '@angular/forms';
import { RouterLink } from '@angular/router';

import { describeError } from '../api/errors';
import { ORDER_STATUSES, Order, OrderStatus, OrdersApi } from '../api/orders';
import { clock, money } from '../shared/format';
import { live } from '../shared/live';
import { OrderForm } from './order-form';

/** Orders, newest first: status filter, customer search, pages; refreshed live. */
@Component({
  selector: 'app-order-list',
  imports: [FormsModule, RouterLink, OrderForm],
  template: `
    <h1>Orders</h1>
    <app-order-form (placedOrder)="refresh()" />
    <h2>Recent orders</h2>
    <div class="filters" role="search">
      <label>Status
        <select name="status" [ngModel]="status()" (ngModelChange)="status.set($event); firstPage()">
          <option value="">any</option>
          @for (s of statuses; track s) { <option [value]="s">{{ s }}</option> }
        </select>
      </label>
      <label>Customer starts with
        <input name="customer" type="search" [ngModel]="customer()" (ngModelChange)="customer.set($event); firstPage()" maxlength="128" />
      </label>
    </div>
    @if (error()) { <p class="error" role="alert">{{ error() }}</p> }
    <table aria-label="Orders">
      <thead><tr><th scope="col">Order</th><th scope="col">Status</th><th scope="col">Customer</th><th scope="col">Total</th><th scope="col">Placed</th><th scope="col">Reason</th></tr></thead>
      <tbody>
        @for (o of orders(); track o.orderId) {
          <tr>
            <td><a class="mono" [routerLink]="['/orders', o.orderId]">{{ o.orderId.slice(0, 8) }}</a></td>
            <td><span class="status" [class]="'status ' + o.status">{{ o.status }}</span></td>
            <td>{{ o.customerId }}</td>
            <td>{{ money(o.total, o.currency) }}</td>
            <td>{{ clock(o.createdAtMs) }}</td>
            <td class="muted">{{ o.reason ?? '' }}</td>
          </tr>
        } @empty {
          <tr><td colspan="6" class="muted">No orders{{ status() || customer() ? ' match' : ' yet' }}.</td></tr>
        }
      </tbody>
    </table>
    <nav class="pages" aria-label="Pages">
      <button type="button" (click)="firstPage()" [disabled]="cursors().length === 0">Newest</button>
      <button type="button" (click)="previousPage()" [disabled]="cursors().length === 0">Newer</button>
      <button type="button" (click)="nextPage()" [disabled]="!nextCursor()">Older</button>
    </nav>
  `,
  styles: `
    .filters { display: flex; gap: 1rem; margin-bottom: 0.6rem; }
    .pages { display: flex; gap: 0.5rem; margin-top: 0.6rem; }
  `,
})
export class OrderList {
  private readonly api = inject(OrdersApi);
  readonly statuses = ORDER_STATUSES;
  readonly money = money;
  readonly clock = clock;

  readonly status = signal<OrderStatus | ''>('');
  readonly customer = signal('');
  readonly orders = signal<Order[]>([]);
  readonly nextCursor = signal<string | null>(null);
  readonly error = signal('');
  /** Cursors of the pages before this one; the current page's is the last (none: the newest). */
  readonly cursors = signal<string[]>([]);

  constructor() {
    live(() => this.refresh());
  }

  refresh(): void {
    const cursor = this.cursors().at(-1) ?? null;
    this.api.list({ status: this.status(), customer: this.customer().trim(), cursor }).subscribe({
      next: (page) => {
        this.orders.set(page.orders);
        this.nextCursor.set(page.nextCursor);
        this.error.set('');
      },
      error: (e: unknown) => this.error.set(describeError(e)),
    });
  }

  firstPage(): void {
    this.cursors.set([]);
    this.refresh();
  }

  nextPage(): void {
    const next = this.nextCursor();
    if (next) {
      this.cursors.update((c) => [...c, next]);
      this.refresh();
    }
  }

  previousPage(): void {
    this.cursors.update((c) => c.slice(0, -1));
    this.refresh();
  }
}
