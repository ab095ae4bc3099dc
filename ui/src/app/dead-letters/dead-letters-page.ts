import { Component, inject, signal } from '@angular/core';
import { FormsModule } from '@angular/forms';
import { RouterLink } from '@angular/router';

import { AuditLine, DeadLetterFilter, DeadLetterSummary, DeadLetterTopic, DeadLettersApi } from '../api/dead-letters';
import { describeError } from '../api/errors';
import { clock } from '../shared/format';
import { live } from '../shared/live';

const KINDS = ['undecodable', 'schema_invalid', 'rejected', 'handler_failed', 'unavailable'];
const STATES = ['new', 'replayed', 'discarded'];

/** Dead letters: topics with counts, entries filtered and paged, bulk replay or discard after a dry run, the audit trail. */
@Component({
  selector: 'app-dead-letters-page',
  imports: [FormsModule, RouterLink],
  template: `
    <h1>Dead letters</h1>
    @if (error()) { <p class="error" role="alert">{{ error() }}</p> }
    <table aria-label="Dead-letter topics">
      <thead><tr><th scope="col">Topic</th><th scope="col">Total</th><th scope="col">By state</th><th scope="col">By kind</th></tr></thead>
      <tbody>
        @for (t of topics(); track t.topic) {
          <tr><td class="mono">{{ t.topic }}</td><td>{{ t.total }}</td><td>{{ pairs(t.byState) }}</td><td>{{ pairs(t.byKind) }}</td></tr>
        } @empty { <tr><td colspan="4" class="muted">No dead letter: every message was handled.</td></tr> }
      </tbody>
    </table>
    <h2>Entries</h2>
    <div class="filters" role="search">
      <label>Topic<select name="topic" [(ngModel)]="filter.topic" (ngModelChange)="firstPage()"><option value="">any</option>@for (t of topics(); track t.topic) { <option [value]="t.topic">{{ t.topic }}</option> }</select></label>
      <label>Kind<select name="kind" [(ngModel)]="filter.kind" (ngModelChange)="firstPage()"><option value="">any</option>@for (k of kinds; track k) { <option [value]="k">{{ k }}</option> }</select></label>
      <label>State<select name="state" [(ngModel)]="filter.state" (ngModelChange)="firstPage()"><option value="">any</option>@for (s of states; track s) { <option [value]="s">{{ s }}</option> }</select></label>
      <label>Text in key or payload<input name="q" type="search" [(ngModel)]="filter.q" (ngModelChange)="firstPage()" maxlength="200" /></label>
      <label>From<input name="from" type="datetime-local" [(ngModel)]="from" (ngModelChange)="times()" /></label>
      <label>To<input name="to" type="datetime-local" [(ngModel)]="to" (ngModelChange)="times()" /></label>
    </div>
    <table aria-label="Dead-letter entries">
      <thead><tr><th scope="col">Entry</th><th scope="col">Topic</th><th scope="col">Kind</th><th scope="col">State</th><th scope="col">Order</th><th scope="col">When</th><th scope="col">Error</th></tr></thead>
      <tbody>
        @for (e of entries(); track e.id) {
          <tr>
            <td><a [routerLink]="['/dead-letters', e.id]">#{{ e.id }}</a></td>
            <td class="mono">{{ e.topic }}</td>
            <td>{{ e.errorKind }}</td>
            <td><span [class]="'status ' + e.state">{{ e.state }}</span></td>
            <td>@if (e.key) { <a class="mono" [routerLink]="['/orders', e.key]">{{ e.key.slice(0, 8) }}</a> }</td>
            <td>{{ clock(e.deadLetteredAtMs) }}</td>
            <td class="muted">{{ e.errorMessage ?? '' }}</td>
          </tr>
        } @empty { <tr><td colspan="7" class="muted">No entry matches.</td></tr> }
      </tbody>
    </table>
    <nav class="pages" aria-label="Pages">
      <button type="button" (click)="firstPage()" [disabled]="!cursor()">Newest</button>
      <button type="button" (click)="nextPage()" [disabled]="!nextCursor()">Older</button>
    </nav>
    <h2>Bulk</h2>
    <p class="muted">Acts on the entries the filter above selects (only <code>new</code> ones unless State says otherwise). A dry run comes first.</p>
    <div class="bulk">
      <button type="button" (click)="preview('replay')">Preview replay</button>
      <button type="button" (click)="preview('discard')">Preview discard</button>
      @if (planned(); as p) {
        <span role="status">{{ p.action }}: {{ p.count }} of {{ p.matched }} matching entries would be {{ p.action === 'replay' ? 'sent back' : 'discarded' }}.</span>
        <button type="button" class="primary" (click)="confirm()" [disabled]="p.count === 0">{{ p.action === 'replay' ? 'Replay' : 'Discard' }} {{ p.count }}</button>
      }
      @if (done()) { <span role="status">{{ done() }}</span> }
    </div>
    <h2>Audit trail</h2>
    <table aria-label="Audit trail">
      <thead><tr><th scope="col">When</th><th scope="col">Who</th><th scope="col">Action</th><th scope="col">Target</th><th scope="col">Outcome</th></tr></thead>
      <tbody>
        @for (a of audit(); track a.seq) {
          <tr><td>{{ clock(a.atMs) }}</td><td>{{ a.actor }}</td><td>{{ a.action }}</td><td class="mono">{{ a.target }}</td><td>{{ a.outcome }}</td></tr>
        } @empty { <tr><td colspan="5" class="muted">Nothing done yet.</td></tr> }
      </tbody>
    </table>
  `,
  styles: `
    .filters, .bulk { display: flex; flex-wrap: wrap; gap: 0.8rem; align-items: flex-end; margin-bottom: 0.6rem; }
    .pages { display: flex; gap: 0.5rem; margin-top: 0.6rem; }
  `,
})
export class DeadLettersPage {
  private readonly api = inject(DeadLettersApi);
  readonly kinds = KINDS;
  readonly states = STATES;
  readonly clock = clock;
  readonly topics = signal<DeadLetterTopic[]>([]);
  readonly entries = signal<DeadLetterSummary[]>([]);
  readonly audit = signal<AuditLine[]>([]);
  readonly nextCursor = signal<string | null>(null);
  readonly cursor = signal<string | null>(null);
  readonly error = signal('');
  readonly planned = signal<{ action: 'replay' | 'discard'; count: number; matched: number } | null>(null);
  readonly done = signal('');
  filter: DeadLetterFilter = { topic: '', kind: '', state: '', q: '' };
  /** The time filter as the inputs hold it (local time). */
  from = '';
  to = '';

  times(): void {
    const ms = (text: string) => (text ? new Date(text).getTime() : null);
    this.filter.from = ms(this.from);
    this.filter.to = ms(this.to);
    this.firstPage();
  }

  constructor() {
    live(() => this.refresh());
  }

  pairs(counts: Record<string, number>): string {
    return Object.entries(counts).map(([k, n]) => `${k} ${n}`).join(', ');
  }

  refresh(): void {
    this.api.topics().subscribe({ next: (t) => this.topics.set(t.topics), error: (e: unknown) => this.error.set(describeError(e)) });
    this.api.entries({ ...this.filter, cursor: this.cursor() }).subscribe({
      next: (page) => {
        this.entries.set(page.entries);
        this.nextCursor.set(page.nextCursor);
        this.error.set('');
      },
      error: (e: unknown) => this.error.set(describeError(e)),
    });
    this.api.audit().subscribe({ next: (a) => this.audit.set(a.audit), error: () => {} });
  }

  firstPage(): void {
    this.cursor.set(null);
    this.planned.set(null);
    this.refresh();
  }

  nextPage(): void {
    this.cursor.set(this.nextCursor());
    this.refresh();
  }

  preview(action: 'replay' | 'discard'): void {
    this.done.set('');
    this.api.bulk(action, this.filter, true).subscribe({
      next: (answer) => {
        const list = (answer[action === 'replay' ? 'wouldSend' : 'wouldDiscard'] as unknown[] | undefined) ?? [];
        this.planned.set({ action, count: list.length, matched: Number(answer['matched'] ?? 0) });
      },
      error: (e: unknown) => this.error.set(describeError(e)),
    });
  }

  confirm(): void {
    const plan = this.planned();
    if (!plan) return;
    this.api.bulk(plan.action, this.filter, false).subscribe({
      next: (answer) => {
        const list = (answer[plan.action === 'replay' ? 'sent' : 'discarded'] as unknown[] | undefined) ?? [];
        this.done.set(`${list.length} ${plan.action === 'replay' ? 'replayed' : 'discarded'}.`);
        this.planned.set(null);
        this.refresh();
      },
      error: (e: unknown) => this.error.set(describeError(e)),
    });
  }
}
