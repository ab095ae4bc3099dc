import { Component, inject, signal, viewChild } from '@angular/core';
import { RouterLink } from '@angular/router';

import { ChaosApi, Injection, RuleView } from '../api/chaos';
import { describeError } from '../api/errors';
import { clock, duration } from '../shared/format';
import { live } from '../shared/live';
import { RuleForm } from './rule-form';

/** Chaos rules (file or API, state, lease, injections), a form for new ones, and the injections as they happen. */
@Component({
  selector: 'app-chaos-page',
  imports: [RouterLink, RuleForm],
  template: `
    <h1>Chaos</h1>
    <app-rule-form (created)="refresh()" />
    @if (error()) { <p class="error" role="alert">{{ error() }}</p> }
    <h2>Rules</h2>
    <table aria-label="Chaos rules">
      <thead><tr><th scope="col">Rule</th><th scope="col">Source</th><th scope="col">State</th><th scope="col">Target → fault</th><th scope="col">Lease left</th><th scope="col">Injections</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
      <tbody>
        @for (r of rules(); track r.id) {
          <tr>
            <td class="mono">{{ r.id }}</td>
            <td>{{ sourceOf(r) }}</td>
            <td><span [class]="'status ' + r.state">{{ r.state }}</span></td>
            <td>{{ describe(r) }}</td>
            <td>{{ r.expiresAtMs ? leaseLeft(r.expiresAtMs) : 'none' }}</td>
            <td>{{ r.count }}</td>
            <td class="actions">
              @if (sourceOf(r) === 'api') {
                @if (r.rule.enabled === false) {
                  <button type="button" (click)="turn(r, true)">Enable</button>
                } @else {
                  <button type="button" (click)="turn(r, false)">Disable</button>
                }
                <button type="button" (click)="form().edit(r.rule)" [attr.aria-label]="'Edit ' + r.id">Edit</button>
                <button type="button" (click)="remove(r)" [attr.aria-label]="'Delete ' + r.id">Delete</button>
              }
            </td>
          </tr>
        } @empty {
          <tr><td colspan="7" class="muted">No rules: nothing is being broken.</td></tr>
        }
      </tbody>
    </table>
    <h2>Injections</h2>
    <table aria-label="Injections">
      <thead><tr><th scope="col">When</th><th scope="col">Rule</th><th scope="col">Fault</th><th scope="col">Where</th><th scope="col">Order</th><th scope="col">Detail</th></tr></thead>
      <tbody>
        @for (i of injections(); track $index) {
          <tr>
            <td>{{ clock(i.atMs) }}</td>
            <td class="mono">{{ i.rule }}</td>
            <td>{{ i.fault }}</td>
            <td>{{ i.service }} · {{ i.target }}</td>
            <td>@if (i.key) { <a class="mono" [routerLink]="['/orders', i.key]">{{ i.key.slice(0, 8) }}</a> }</td>
            <td class="muted">{{ i.detail ?? '' }}</td>
          </tr>
        } @empty {
          <tr><td colspan="6" class="muted">No injection yet.</td></tr>
        }
      </tbody>
    </table>
  `,
  styles: `
    .actions { display: flex; gap: 0.3rem; }
    .visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
  `,
})
export class ChaosPage {
  private readonly api = inject(ChaosApi);
  readonly form = viewChild.required(RuleForm);
  readonly rules = signal<RuleView[]>([]);
  readonly injections = signal<Injection[]>([]);
  readonly error = signal('');
  readonly now = signal(Date.now());
  readonly clock = clock;

  constructor() {
    live(() => this.refresh());
  }

  refresh(): void {
    this.now.set(Date.now());
    this.api.rules().subscribe({ next: (r) => this.rules.set(r.rules), error: (e: unknown) => this.error.set(describeError(e)) });
    this.api.injections(50).subscribe({ next: (r) => this.injections.set(r.injections), error: () => {} });
  }

  sourceOf(rule: RuleView): string {
    const source = rule.source;
    if (typeof source === 'string') return source;
    return source.kind === 'file' ? `file of ${source.service ?? '?'}` : (source.kind ?? 'api');
  }

  describe(rule: RuleView): string {
    const { kind: targetKind, ...target } = rule.rule.target;
    const { kind: faultKind, ...fault } = rule.rule.fault;
    const args = (o: Record<string, unknown>) => Object.entries(o).map(([k, v]) => `${k}=${v}`).join(' ');
    const sample = rule.rule.key_sample !== undefined ? `, ${Math.round(rule.rule.key_sample * 100)}% of orders` : '';
    return `${targetKind} ${args(target)} → ${faultKind} ${args(fault)}${sample}`.replace(/\s+/g, ' ');
  }

  leaseLeft(expiresAtMs: number): string {
    const left = expiresAtMs - this.now();
    return left > 0 ? duration(left) : 'ended';
  }

  turn(rule: RuleView, on: boolean): void {
    this.api.switch(rule.id, on).subscribe({ next: () => this.refresh(), error: (e: unknown) => this.error.set(describeError(e)) });
  }

  remove(rule: RuleView): void {
    this.api.remove(rule.id).subscribe({ next: () => this.refresh(), error: (e: unknown) => this.error.set(describeError(e)) });
  }
}
