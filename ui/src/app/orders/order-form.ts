import { Component, inject, output, signal } from '@angular/core';
import { FormsModule } from '@angular/forms';
import { RouterLink } from '@angular/router';

import { describeError, fieldErrors } from '../api/errors';
import { NewOrder, OrdersApi } from '../api/orders';

/** The demo's cases, one click away; each sets the form to an order that meets it. */
export const PRESETS: { name: string; label: string; order: NewOrder }[] = [
  { name: 'valid', label: 'Valid order', order: order('customer-42', 'SKU-1', 2, 1999, 'DE') },
  { name: 'blocked', label: 'Blocked customer', order: order('blocked-mallory', 'SKU-2', 1, 1999, 'DE') },
  { name: 'unknown-sku', label: 'Unknown SKU', order: order('customer-43', 'SKU-404', 1, 1999, 'DE') },
  { name: 'country-zz', label: 'Country ZZ', order: order('customer-44', 'SKU-3', 1, 1999, 'ZZ') },
  { name: 'over-limit', label: 'Over the limit', order: order('customer-45', 'SKU-4', 1, 600000, 'DE') },
];

function order(customerId: string, sku: string, quantity: number, unitPrice: number, country: string): NewOrder {
  return { customerId, currency: 'EUR', items: [{ sku, quantity, unitPrice }], shipTo: { country } };
}

/** Places an order with `POST /api/orders`; says which field the API refused. */
@Component({
  selector: 'app-order-form',
  imports: [FormsModule, RouterLink],
  template: `
    <form (ngSubmit)="place()" aria-labelledby="place-heading">
      <h2 id="place-heading">Place an order</h2>
      <div class="presets" role="group" aria-label="Demo cases">
        @for (preset of presets; track preset.name) {
          <button type="button" (click)="use(preset.order)">{{ preset.label }}</button>
        }
      </div>
      <div class="fields">
        <label>Customer<input name="customerId" [(ngModel)]="customerId" required maxlength="128" /></label>
        <label>SKU<input name="sku" [(ngModel)]="sku" required maxlength="64" /></label>
        <label>Quantity<input name="quantity" type="number" min="1" [(ngModel)]="quantity" required /></label>
        <label>Unit price (cents)<input name="unitPrice" type="number" min="0" [(ngModel)]="unitPrice" required /></label>
        <label>Country<input name="country" [(ngModel)]="country" required maxlength="2" size="3" /></label>
        <label>Currency<input name="currency" [(ngModel)]="currency" required maxlength="3" size="4" /></label>
        <button class="primary" type="submit" [disabled]="sending()">Place order</button>
      </div>
      @if (error()) {
        <p class="error" role="alert">{{ error() }}</p>
        @for (field of fieldList(); track field[0]) {
          <p class="error"><code>{{ field[0] }}</code>: {{ field[1] }}</p>
        }
      }
      @if (placed()) {
        <p role="status">Placed <a [routerLink]="['/orders', placed()]">{{ placed() }}</a>.</p>
      }
    </form>
  `,
  styles: `
    form { border: 1px solid var(--line); border-radius: 6px; padding: 0.8rem 1rem; background: var(--panel); }
    h2 { margin-top: 0; }
    .presets { display: flex; flex-wrap: wrap; gap: 0.4rem; margin-bottom: 0.6rem; }
    .fields { display: flex; flex-wrap: wrap; gap: 0.6rem; align-items: flex-end; }
  `,
})
export class OrderForm {
  private readonly api = inject(OrdersApi);
  readonly presets = PRESETS;
  /** Emits the new order's id. */
  readonly placedOrder = output<string>();

  customerId = 'customer-42';
  sku = 'SKU-1';
  quantity = 1;
  unitPrice = 1999;
  country = 'DE';
  currency = 'EUR';

  readonly sending = signal(false);
  readonly error = signal('');
  readonly fieldList = signal<[string, string][]>([]);
  readonly placed = signal('');

  use(order: NewOrder): void {
    this.customerId = order.customerId;
    this.currency = order.currency;
    this.sku = order.items[0].sku;
    this.quantity = order.items[0].quantity;
    this.unitPrice = order.items[0].unitPrice;
    this.country = order.shipTo.country;
  }

  place(): void {
    this.sending.set(true);
    this.error.set('');
    this.fieldList.set([]);
    const order: NewOrder = {
      customerId: this.customerId,
      currency: this.currency,
      items: [{ sku: this.sku, quantity: Number(this.quantity), unitPrice: Number(this.unitPrice) }],
      shipTo: { country: this.country },
    };
    this.api.place(order).subscribe({
      next: (answer) => {
        this.sending.set(false);
        this.placed.set(answer.orderId);
        this.placedOrder.emit(answer.orderId);
      },
      error: (e: unknown) => {
        this.sending.set(false);
        this.error.set(describeError(e));
        this.fieldList.set(Object.entries(fieldErrors(e)));
      },
    });
  }
}
