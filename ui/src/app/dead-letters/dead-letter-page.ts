import { Component, ElementRef, computed, inject, input, signal, viewChild } from '@angular/core';
import { FormsModule } from '@angular/forms';
import { RouterLink } from '@angular/router';

import { DeadLetter, DeadLettersApi } from '../api/dead-letters';
import { FieldProblem, describeError, fieldProblems } from '../api/errors';
import { clock } from '../shared/format';
import { live } from '../shared/live';
import { lineOfPointer, lineSpan, syntaxErrorLine } from './json-lines';

/** A problem of the edited payload, placed in the editor's text when it can be. */
export interface PayloadProblem {
  /** What it is about: `payload`, a JSON pointer inside it (`/amount`), or `not JSON`. */
  label: string;
  message: string;
  /** The line of the draft it is at; null: the payload as a whole. */
  line: number | null;
}

/** What the API or the JSON check said about the payload; placed in the draft as it is now. */
type PayloadIssue = { pointer: string; message: string } | { syntaxLine: number | null; message: string };

/** The JSON pointer inside the payload a problem's field names (`payload/amount` → `/amount`), or null. */
export function payloadPointer(field: string): string | null {
  if (field === 'payload') return '';
  return field.startsWith('payload/') ? field.slice('payload'.length) : null;
}

/** One dead letter: why it failed, headers, the payload in an editor, replay or discard, its history. */
@Component({
  selector: 'app-dead-letter-page',
  imports: [FormsModule, RouterLink],
  template: `
    <p><a routerLink="/dead-letters">← Dead letters</a></p>
    @if (error()) {
      <div class="error" role="alert">
        <p>{{ error() }}</p>
        @for (f of fields(); track $index) { <p><code>{{ f.field }}</code>: {{ f.message }}</p> }
        @if (problems().length) { <p>The problems are listed under the payload.</p> }
      </div>
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
      <label for="payload-editor">Payload ({{ e.payloadEncoding }}), edit before replaying if needed</label>
      <div class="editor">
        <div class="gutter" #gutter aria-hidden="true" data-testid="gutter">
          @for (n of lineNumbers(); track n) { <div [class.bad]="badLines().has(n)">{{ n }}</div> }
        </div>
        <textarea #editor id="payload-editor" name="payload" rows="14" wrap="off" spellcheck="false"
          [ngModel]="draft()" (ngModelChange)="draft.set($event)" (scroll)="syncGutter()"
          [attr.aria-invalid]="problems().length ? 'true' : null"
          [attr.aria-describedby]="problems().length ? 'payload-problems' : null"></textarea>
      </div>
      @if (problems().length) {
        <div id="payload-problems" class="problems">
          <p>{{ problems().length === 1 ? 'One problem' : problems().length + ' problems' }} in the payload (choose one to go to its line):</p>
          <ul>
            @for (p of problems(); track $index) {
              <li><button type="button" (click)="show(p)">{{ p.line === null ? 'whole payload' : 'line ' + p.line }} · {{ p.label }}: {{ p.message }}</button></li>
            }
          </ul>
        </div>
      }
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
    .editor { display: flex; width: 100%; margin-top: 0.2rem; }
    .gutter, textarea { font: 0.85rem/1.45 ui-monospace, SFMono-Regular, Menlo, monospace; padding: 0.4rem; }
    /* contain: the numbers never make the editor taller than the textarea. */
    .gutter { overflow: hidden; contain: size; width: 2.6rem; flex: none; text-align: right; color: var(--muted); background: var(--panel); border: 1px solid var(--line); border-right: 0; user-select: none; }
    .gutter::after { content: ''; display: block; height: 2rem; }
    .gutter .bad { color: var(--bad); background: #ffebe9; font-weight: 700; box-shadow: inset 3px 0 var(--bad); }
    textarea { flex: 1; margin: 0; border: 1px solid var(--line); resize: vertical; white-space: pre; }
    textarea[aria-invalid='true'] { border-color: var(--bad); }
    .problems { color: var(--bad); }
    .problems p { margin: 0.4rem 0 0.2rem; }
    .problems ul { margin: 0; padding-left: 1.2rem; }
    .problems button { border: 0; background: none; padding: 0.1rem 0; color: var(--bad); text-align: left; text-decoration: underline; }
    .actions { display: flex; gap: 0.6rem; align-items: flex-end; margin-top: 0.5rem; flex-wrap: wrap; }
  `,
})
export class DeadLetterPage {
  private readonly api = inject(DeadLettersApi);
  readonly id = input.required<string>();
  readonly entry = signal<DeadLetter | null>(null);
  readonly error = signal('');
  /** Problems the API named that are not about the payload. */
  readonly fields = signal<FieldProblem[]>([]);
  readonly done = signal('');
  readonly clock = clock;
  readonly draft = signal('');
  reason = '';
  private original = '';
  private readonly issues = signal<PayloadIssue[]>([]);
  private readonly editor = viewChild<ElementRef<HTMLTextAreaElement>>('editor');
  private readonly gutter = viewChild<ElementRef<HTMLElement>>('gutter');

  /** The payload's problems, each at its line of the draft as it is now. */
  readonly problems = computed<PayloadProblem[]>(() => {
    const text = this.draft();
    return this.issues().map((issue) =>
      'pointer' in issue
        ? { label: issue.pointer || 'payload', message: issue.message, line: lineOfPointer(text, issue.pointer) }
        : { label: 'not JSON', message: issue.message, line: issue.syntaxLine },
    );
  });
  readonly badLines = computed(() => new Set(this.problems().map((p) => p.line)));
  readonly lineNumbers = computed(() => {
    const count = this.draft().split('\n').length;
    return Array.from({ length: count }, (_, i) => i + 1);
  });

  constructor() {
    live(() => this.load(false), 3000);
  }

  /** Reads the entry; the editor is filled on the first read and kept while being edited. */
  load(force: boolean): void {
    this.api.entry(this.id()).subscribe({
      next: (e) => {
        const text = e.payloadEncoding === 'json' ? JSON.stringify(e.payload, null, 2) : String(e.payload ?? '');
        if (force || this.draft() === this.original) this.draft.set(text);
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
    this.issues.set([]);
    let payload: unknown;
    const draft = this.draft();
    if (draft !== this.original) {
      try {
        payload = JSON.parse(draft);
      } catch (problem) {
        const message = (problem as Error).message;
        const line = syntaxErrorLine(draft, message);
        this.error.set(`the payload is not JSON${line === null ? '' : ` (line ${line})`}: fix the JSON, or undo the edit`);
        this.issues.set([{ syntaxLine: line, message }]);
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
        const issues: PayloadIssue[] = [];
        const others: FieldProblem[] = [];
        for (const f of fieldProblems(err)) {
          const pointer = payloadPointer(f.field);
          if (pointer === null) others.push(f);
          else issues.push({ pointer, message: f.message });
        }
        this.issues.set(issues);
        this.fields.set(others);
      },
    });
  }

  /** Puts the caret on a problem's line (the whole line selected) and the editor in focus. */
  show(problem: PayloadProblem): void {
    const editor = this.editor()?.nativeElement;
    if (!editor) return;
    editor.focus();
    if (problem.line === null) return;
    const [start, end] = lineSpan(this.draft(), problem.line);
    editor.setSelectionRange(start, end);
    const lineHeight = parseFloat(getComputedStyle(editor).lineHeight) || 18;
    editor.scrollTop = Math.max(0, (problem.line - 1) * lineHeight - editor.clientHeight / 3);
    this.syncGutter();
  }

  /** The line numbers follow the editor's scrolling. */
  syncGutter(): void {
    const editor = this.editor()?.nativeElement;
    const gutter = this.gutter()?.nativeElement;
    if (editor && gutter) gutter.scrollTop = editor.scrollTop;
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
