import { Routes } from '@angular/router';

/** One route per page; each feature's components load with it. */
export const routes: Routes = [
  { path: '', pathMatch: 'full', redirectTo: 'orders' },
  { path: 'orders', title: 'Orders · Chaos Symphony', loadComponent: () => import('./orders/order-list').then((m) => m.OrderList) },
  { path: 'orders/:id', title: 'Order · Chaos Symphony', loadComponent: () => import('./orders/order-detail').then((m) => m.OrderDetail) },
  { path: '**', title: 'Not found · Chaos Symphony', loadComponent: () => import('./shared/not-found').then((m) => m.NotFound) },
];
