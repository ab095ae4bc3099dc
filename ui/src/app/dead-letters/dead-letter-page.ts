import { Component, inject, input, signal } from '@angular/core';
import { FormsModule } from '@angular/forms';
import { RouterLink } from '@angular/router';

import { DeadLetter, DeadLettersApi } from '../api/dead-letters';
import { describeError, fieldErrors } from '../api/errors';
import { clock } from '../shared/format';
import { live } from '../shared/live';

/** One dead letter: why it failed, headers, the payload in an editor, replay or discard, its history. */
@Component({
  selector: 'app-dead-letter-page',
  imports: [FormsModule, RouterLink],
  template: `
    <p><a routerLink="/dead-letters">← Dead letters</a></p>
    @if (error()) {
      <div class="error" role="alert"><p>{{ error() }}</p>@for (f of fields(); track f[0]) { <p><code>{{ f[0] }}</code>: {{ f[1] }}</p> }</div>
    }
    @if (entry(); as e) {
      <h1>Dead letter #{{ e.id }}</h1>
      <dl class="facts">
        <dt>State</dt><dd><span [class]="'status ' + e.state" data-testid="entry-state">{{ e.state }}</span> ({{ e.replayCount }} replays)</dd>
        <dt>Topic</dt><dd class="mono">{{ e.topic }} ← {{ e.originalTopic }}</dd>
        <dt>Error</dt><dd>{{ e.errorKind }}: {{ e.errorMessage }} ({{ e.attempts ?? '?' }} attempts)</dd>
        <dt>Order</dt><dd>@if (e.key) { <a class="mono" [routerLink]="['/orders', e.key]">{{ e.key }}</a> }</dd>
        <dt>When</dt><dd>{{ clock(e.deadLetteredAtMs) }}</dd>
      </dl>
      <h2>Payload</h2>
      <label class="editor">Payload ({{ e.payloadEncoding }}), edit before replaying if needed
        <textarea name="payload" rows="14" [(ngModel)]="draft" spellcheck="false"></textarea>
      </label>
      <div class="actions">
        <button type="button" class="primary" (click)="replay()" [disabled]="!e.replay.allowed">Replay</button>
        <label>Reason<input name="reason" [(ngModel)]="reason" placeholder="why discard" /></label>
        <button type="button" (click)="discard()" [disabled]="e.state === 'discarded'">Discard</button>
        @if (!e.replay.allowed) { <span class="muted">{{ e.replay.refusal }}</span> }
        @if (done()) { <span role="status">{{ done() }}</span> }
      </div>
      <h2>Headers</h2>
      <table aria-label="Headers">
        <thead><tr><th scope="col">Header</th><th scope="col">Value</th></tr></thead>
        <tbody>@for (h of e.headers; track $index) { <tr><td class="mono">{{ h.name }}</td><td class="mono">{{ h.value }}</td></tr> }</tbody>
      </table>
      <h2>History</h2>
      <ol>@for (line of e.history; track $index) { <li>{{ clock(line.atMs) }} {{ line.action }} by {{ line.actor }} <span class="muted">{{ line.detail ?? '' }}</span></li> }</ol>
    }
  `,
  styles: `
    .facts { display: grid; grid-template-columns: max-content 1fr; gap: 0.3rem 1rem; }
    .facts dt { color: var(--muted); }
    .facts dd { margin: 0; }
    .editor { display: flex; width: 100%; }
    textarea { font-family: ui-monospace, monospace; font-size: 0.9em; width: 100%; }
    .actions { display: flex; gap: 0.6rem; align-items: flex-end; margin-top: 0.5rem; flex-wrap: wrap; }
  `,
})
export class DeadLetterPage {
  private readonly api = inject(DeadLettersApi);
  readonly id = input.required<string>();
  readonly entry = signal<DeadLetter | null>(null);
  readonly error = signal('');
  readonly fields = signal<[string, string][]>([]);
  readonly done = signal('');
  readonly clock = clock;
  draft = '';
  reason = '';
  private original = '';

  constructor() {
    live(() => this.load(false), 3000);
  }

  /** Reads the entry; the editor is filled on the first read and kept while being edited. */
  load(force: boolean): void {
    this.api.entry(this.id()).subscribe({
      next: (e) => {
        const text = e.payloadEncoding === 'json' ? JSON.stringify(e.payload, null, 2) : String(e.payload ?? '');
        if (force || this.draft === this.original) this.draft = text;
        this.original = text;
        this.entry.set(e);
      },
      error: (e: unknown) => this.error.set(describeError(e)),
    });
  }

  replay(): void {
    const e = this.entry();
    if (!e) return;
    this.error.set('');
    this.fields.set([]);
    let payload: unknown;
    if (this.draft !== this.original) {
      try {
        payload = JSON.parse(this.draft);
      } catch (problem) {
        this.error.set(`the payload is not JSON: ${(problem as Error).message}`);
        this.fields.set([['payload', 'fix the JSON, or undo the edit']]);
        return;
      }
    }
    this.api.replay(e.id, payload).subscribe({
      next: () => {
        this.done.set(payload === undefined ? 'Replayed.' : 'Replayed with the edited payload.');
        this.load(true);
      },
      error: (err: unknown) => {
        this.error.set(describeError(err));
        this.fields.set(Object.entries(fieldErrors(err)));
      },
    });
  }

  discard(): void {
    const e = this.entry();
    if (!e) return;
    this.api.discard(e.id, this.reason || 'discarded from the console').subscribe({
      next: () => {
        this.done.set('Discarded.');
        this.load(true);
      },
      error: (err: unknown) => this.error.set(describeError(err)),
    });
  }
}
