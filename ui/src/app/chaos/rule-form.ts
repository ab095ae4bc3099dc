import { Component, inject, output, signal } from '@angular/core';
import { FormsModule } from '@angular/forms';

import { describeError, fieldErrors } from '../api/errors';
import { ChaosApi, RuleSpec } from '../api/chaos';

export const TARGET_KINDS = ['service', 'handler', 'topic', 'http', 'store', 'broker'] as const;
export const FAULT_KINDS = ['latency', 'error', 'duplicate', 'drop', 'corrupt', 'http_status', 'crash', 'down'] as const;

/** What the form holds, as typed; [`ruleOf`] turns it into the API's shape. */
export interface RuleDraft {
  id: string;
  targetKind: (typeof TARGET_KINDS)[number];
  service: string;
  handler: string;
  topic: string;
  side: 'consume' | 'produce';
  route: string;
  faultKind: (typeof FAULT_KINDS)[number];
  fixed: string;
  min: string;
  max: string;
  jitter: string;
  message: string;
  status: number;
  probability: string;
  keySample: string;
  ttl: string;
  allowDrop: boolean;
}

/** The rule chaos-svc takes, with only the fields the chosen kinds use. */
export function ruleOf(d: RuleDraft): RuleSpec {
  const target: RuleSpec['target'] = { kind: d.targetKind };
  if (['service', 'http', 'store'].includes(d.targetKind) || (d.targetKind === 'handler' && d.service)) target['service'] = d.service;
  if (d.targetKind === 'handler') target['handler'] = d.handler;
  if (d.targetKind === 'topic') Object.assign(target, { topic: d.topic, side: d.side });
  if (d.targetKind === 'http' && d.route) target['route'] = d.route;
  const fault: RuleSpec['fault'] = { kind: d.faultKind };
  if (d.faultKind === 'latency') {
    for (const key of ['fixed', 'min', 'max', 'jitter'] as const) if (d[key]) fault[key] = d[key];
  }
  if (d.faultKind === 'error' && d.message) fault['message'] = d.message;
  if (d.faultKind === 'http_status') fault['status'] = Number(d.status);
  const rule: RuleSpec = { id: d.id, target, fault };
  if (d.probability !== '') rule.probability = Number(d.probability);
  if (d.keySample !== '') rule.key_sample = Number(d.keySample);
  if (d.ttl) rule.ttl = d.ttl;
  if (d.faultKind === 'drop') rule.allow_drop = d.allowDrop;
  return rule;
}

/** The form's fields from a rule (to edit it). */
export function draftOf(rule: RuleSpec): RuleDraft {
  const t = rule.target as Record<string, unknown>;
  const f = rule.fault as Record<string, unknown>;
  const text = (v: unknown) => (v === undefined || v === null ? '' : String(v));
  return {
    id: rule.id,
    targetKind: rule.target.kind as RuleDraft['targetKind'],
    service: text(t['service']),
    handler: text(t['handler']),
    topic: text(t['topic']),
    side: (text(t['side']) || 'consume') as RuleDraft['side'],
    route: text(t['route']),
    faultKind: rule.fault.kind as RuleDraft['faultKind'],
    fixed: text(f['fixed']),
    min: text(f['min']),
    max: text(f['max']),
    jitter: text(f['jitter']),
    message: text(f['message']),
    status: Number(f['status'] ?? 503),
    probability: text(rule.probability),
    keySample: text(rule.key_sample),
    ttl: text(rule.ttl),
    allowDrop: rule.allow_drop ?? false,
  };
}

/** The fields the form edits; the others of a rule pass through an edit unchanged. */
const FORMED = ['id', 'target', 'fault', 'probability', 'key_sample', 'ttl', 'expires_at', 'allow_drop'];

/** `edited` with every field of `original` the form has no input for. */
export function keepUnformed(original: RuleSpec, edited: RuleSpec): RuleSpec {
  const kept = Object.fromEntries(Object.entries(original).filter(([key]) => !FORMED.includes(key)));
  return { ...kept, ...edited } as RuleSpec;
}

/** Creates a chaos rule through chaos-svc, every target and fault kind, the API's field errors shown. */
@Component({
  selector: 'app-rule-form',
  imports: [FormsModule],
  template: `
    <form (ngSubmit)="create()" aria-labelledby="rule-heading">
      <h2 id="rule-heading">{{ editing() ? 'Edit rule ' + d.id : 'New rule' }}</h2>
      <div class="fields">
        <label>Rule id<input name="id" [(ngModel)]="d.id" required maxlength="100" [readonly]="editing()" /></label>
        <label>Target
          <select name="targetKind" [(ngModel)]="d.targetKind">
            @for (k of targetKinds; track k) { <option [value]="k">{{ k }}</option> }
          </select>
        </label>
        @if (['service', 'http', 'store', 'handler'].includes(d.targetKind)) {
          <label>Service{{ d.targetKind === 'handler' ? ' (optional)' : '' }}<input name="service" [(ngModel)]="d.service" /></label>
        }
        @if (d.targetKind === 'handler') { <label>Handler<input name="handler" [(ngModel)]="d.handler" placeholder="payment.charge" /></label> }
        @if (d.targetKind === 'topic') {
          <label>Topic<input name="topic" [(ngModel)]="d.topic" /></label>
          <label>Side<select name="side" [(ngModel)]="d.side"><option value="consume">consume</option><option value="produce">produce</option></select></label>
        }
        @if (d.targetKind === 'http') { <label>Route prefix (optional)<input name="route" [(ngModel)]="d.route" /></label> }
      </div>
      <div class="fields">
        <label>Fault
          <select name="faultKind" [(ngModel)]="d.faultKind">
            @for (k of faultKinds; track k) { <option [value]="k">{{ k }}</option> }
          </select>
        </label>
        @if (d.faultKind === 'latency') {
          <label>Fixed<input name="fixed" [(ngModel)]="d.fixed" placeholder="500ms" size="7" /></label>
          <label>Min<input name="min" [(ngModel)]="d.min" size="7" /></label>
          <label>Max<input name="max" [(ngModel)]="d.max" size="7" /></label>
          <label>Jitter<input name="jitter" [(ngModel)]="d.jitter" size="7" /></label>
        }
        @if (d.faultKind === 'error') { <label>Message<input name="message" [(ngModel)]="d.message" /></label> }
        @if (d.faultKind === 'http_status') { <label>Status<input name="status" type="number" [(ngModel)]="d.status" /></label> }
        @if (d.faultKind === 'drop') { <label class="check"><input name="allowDrop" type="checkbox" [(ngModel)]="d.allowDrop" /> allow drop</label> }
        <label>Probability (0–1)<input name="probability" [(ngModel)]="d.probability" size="5" /></label>
        <label>Blast radius, share of orders (0–1)<input name="keySample" [(ngModel)]="d.keySample" size="5" /></label>
        <label>Lease<input name="ttl" [(ngModel)]="d.ttl" placeholder="10m" size="6" /></label>
        <button class="primary" type="submit" [disabled]="sending()">{{ editing() ? 'Save rule' : 'Create rule' }}</button>
        @if (editing()) { <button type="button" (click)="editing.set(false)">Cancel</button> }
      </div>
      @if (error()) {
        <div class="error" role="alert">
          <p>{{ error() }}</p>
          @for (f of fields(); track f[0]) { <p><code>{{ f[0] }}</code>: {{ f[1] }}</p> }
        </div>
      }
    </form>
  `,
  styles: `
    form { border: 1px solid var(--line); border-radius: 6px; padding: 0.8rem 1rem; background: var(--panel); }
    h2 { margin-top: 0; }
    .fields { display: flex; flex-wrap: wrap; gap: 0.6rem; align-items: flex-end; margin-bottom: 0.6rem; }
    .check { flex-direction: row; align-items: center; }
  `,
})
export class RuleForm {
  private readonly api = inject(ChaosApi);
  readonly targetKinds = TARGET_KINDS;
  readonly faultKinds = FAULT_KINDS;
  /** Emits the id of the rule created. */
  readonly created = output<string>();
  readonly sending = signal(false);
  readonly error = signal('');
  readonly fields = signal<[string, string][]>([]);
  /** Editing an existing rule (saved with PUT) rather than creating one. */
  readonly editing = signal(false);

  /** The rule being edited: what the form has no field for (`rate`, `max_count`, a window, …) is kept from it. */
  private original: RuleSpec | null = null;

  edit(rule: RuleSpec): void {
    this.original = rule;
    this.d = draftOf(rule);
    this.editing.set(true);
    this.error.set('');
    this.fields.set([]);
  }

  d: RuleDraft = {
    id: 'flaky-payments',
    targetKind: 'handler',
    service: '',
    handler: 'payment.charge',
    topic: '',
    side: 'consume',
    route: '',
    faultKind: 'error',
    fixed: '',
    min: '',
    max: '',
    jitter: '',
    message: '',
    status: 503,
    probability: '',
    keySample: '',
    ttl: '10m',
    allowDrop: false,
  };

  create(): void {
    this.sending.set(true);
    this.error.set('');
    this.fields.set([]);
    const rule = this.editing() && this.original ? keepUnformed(this.original, ruleOf(this.d)) : ruleOf(this.d);
    (this.editing() ? this.api.update(rule) : this.api.create(rule)).subscribe({
      next: (saved) => {
        this.sending.set(false);
        this.editing.set(false);
        this.created.emit(saved.id);
      },
      error: (e: unknown) => {
        this.sending.set(false);
        this.error.set(describeError(e));
        this.fields.set(Object.entries(fieldErrors(e)));
      },
    });
  }
}
