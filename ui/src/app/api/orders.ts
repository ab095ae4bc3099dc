import { HttpClient, HttpParams } from '@angular/common/http';
import { Injectable, inject } from '@angular/core';
import { Observable } from 'rxjs';

/** An order as order-api answers it (`GET /api/orders`, `GET /api/orders/{id}`). */
export interface Order {
  orderId: string;
  status: OrderStatus;
  reason?: string;
  customerId: string;
  currency: string;
  total: number;
  items: OrderItem[];
  shipTo: { country: string };
  createdAtMs: number;
  updatedAtMs: number;
  /** The saga's history, oldest first (the detail only). */
  history?: HistoryLine[];
  /** The order's trace (the detail only, once its saga started). */
  traceId?: string;
}

export type OrderStatus = 'PENDING' | 'COMPLETED' | 'CANCELLED' | 'FAILED';
export const ORDER_STATUSES: OrderStatus[] = ['PENDING', 'COMPLETED', 'CANCELLED', 'FAILED'];

export interface OrderItem {
  sku: string;
  quantity: number;
  unitPrice: number;
}

export interface HistoryLine {
  step: string;
  action: string;
  detail?: string;
  atMs: number;
}

export interface OrderPage {
  orders: Order[];
  nextCursor: string | null;
}

/** What `POST /api/orders` takes. */
export interface NewOrder {
  customerId: string;
  currency: string;
  items: OrderItem[];
  shipTo: { country: string };
}

export interface OrderFilter {
  status?: OrderStatus | '';
  customer?: string;
  cursor?: string | null;
  limit?: number;
}

/** The typed client of order-api. */
@Injectable({ providedIn: 'root' })
export class OrdersApi {
  private readonly http = inject(HttpClient);

  list(filter: OrderFilter): Observable<OrderPage> {
    let params = new HttpParams().set('limit', String(filter.limit ?? 25));
    if (filter.status) params = params.set('status', filter.status);
    if (filter.customer) params = params.set('customer', filter.customer);
    if (filter.cursor) params = params.set('cursor', filter.cursor);
    return this.http.get<OrderPage>('/api/orders', { params });
  }

  get(id: string): Observable<Order> {
    return this.http.get<Order>(`/api/orders/${encodeURIComponent(id)}`);
  }

  place(order: NewOrder): Observable<{ orderId: string; status: OrderStatus }> {
    return this.http.post<{ orderId: string; status: OrderStatus }>('/api/orders', order);
  }
}
