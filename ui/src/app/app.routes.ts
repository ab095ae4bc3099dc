import { Routes } from '@angular/router';

/** One route per page; each feature's components load with it. */
export const routes: Routes = [
  { path: '', pathMatch: 'full', redirectTo: 'orders' },
  { path: 'orders', title: 'Orders · Chaos Symphony', loadComponent: () => import('./orders/order-list').then((m) => m.OrderList) },
  { path: 'orders/:id', title: 'Order · Chaos Symphony', loadComponent: () => import('./orders/order-detail').then((m) => m.OrderDetail) },
  { path: 'dead-letters', title: 'Dead letters · Chaos Symphony', loadComponent: () => import('./dead-letters/dead-letters-page').then((m) => m.DeadLettersPage) },
  { path: 'dead-letters/:id', title: 'Dead letter · Chaos Symphony', loadComponent: () => import('./dead-letters/dead-letter-page').then((m) => m.DeadLetterPage) },
  { path: 'chaos', title: 'Chaos · Chaos Symphony', loadComponent: () => import('./chaos/chaos-page').then((m) => m.ChaosPage) },
  { path: 'canary', title: 'Canary · Chaos Symphony', loadComponent: () => import('./canary/canary-page').then((m) => m.CanaryPage) },
  { path: 'slo', title: 'SLOs · Chaos Symphony', loadComponent: () => import('./slo/slo-page').then((m) => m.SloPage) },
  { path: 'gamedays', title: 'Game days · Chaos Symphony', loadComponent: () => import('./gamedays/gamedays-page').then((m) => m.GamedaysPage) },
  { path: 'gamedays/runs/:id', title: 'Game day · Chaos Symphony', loadComponent: () => import('./gamedays/run-page').then((m) => m.RunPage) },
  { path: 'runtime', title: 'Runtime · Chaos Symphony', loadComponent: () => import('./runtime/runtime-page').then((m) => m.RuntimePage) },
  { path: '**', title: 'Not found · Chaos Symphony', loadComponent: () => import('./shared/not-found').then((m) => m.NotFound) },
];
