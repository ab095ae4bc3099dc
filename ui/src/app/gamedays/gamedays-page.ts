import { Component, inject, signal } from '@angular/core';
import { Router, RouterLink } from '@angular/router';

import { describeError } from '../api/errors';
import { GamedaysApi, RunState, ScenarioView } from '../api/gamedays';
import { clock, duration } from '../shared/format';
import { live } from '../shared/live';

/** Game days: the scenarios to start, and the runs with their verdicts. */
@Component({
  selector: 'app-gamedays-page',
  imports: [RouterLink],
  template: `
    <h1>Game days</h1>
    @if (error()) { <p class="error" role="alert">{{ error() }}</p> }
    <h2>Scenarios</h2>
    <ul class="scenarios">
      @for (s of scenarios(); track s.file) {
        <li>
          <h3>{{ s.name }}</h3>
          @if (s.valid) {
            <p>{{ s.description }}</p>
            <p class="muted">{{ duration(s.durationMs ?? 0) }} of load · {{ s.faults?.length ?? 0 }} fault(s)@if (s.stopConditions?.length) { · stops on {{ s.stopConditions?.join('; ') }}}</p>
            <button type="button" class="primary" (click)="start(s.name)" [attr.aria-label]="'Start ' + s.name">Start</button>
          } @else {
            <p class="error">This file has problems: {{ s.problems }}</p>
          }
        </li>
      }
    </ul>
    <h2>Runs</h2>
    <table aria-label="Game-day runs">
      <thead><tr><th scope="col">Run</th><th scope="col">Scenario</th><th scope="col">State</th><th scope="col">Started</th><th scope="col">Orders</th><th scope="col">Verdict</th></tr></thead>
      <tbody>
        @for (r of runs(); track r.id) {
          <tr>
            <td><a class="mono" [routerLink]="['/gamedays/runs', r.id]">{{ r.id.slice(0, 8) }}</a></td>
            <td>{{ r.scenario }}</td>
            <td><span [class]="'status ' + r.state">{{ r.state }}</span></td>
            <td>{{ clock(r.startedAtMs) }} by {{ r.startedBy }}</td>
            <td>{{ r.orders.accepted }}</td>
            <td class="muted">{{ r.verdict?.summary ?? '' }}</td>
          </tr>
        } @empty {
          <tr><td colspan="6" class="muted">No game day yet.</td></tr>
        }
      </tbody>
    </table>
  `,
  styles: `
    .scenarios { list-style: none; padding: 0; display: grid; grid-template-columns: repeat(auto-fill, minmax(20rem, 1fr)); gap: 0.8rem; }
    .scenarios li { border: 1px solid var(--line); border-radius: 6px; padding: 0.6rem 0.9rem; }
    h3 { margin: 0 0 0.3rem; font-size: 1rem; }
  `,
})
export class GamedaysPage {
  private readonly api = inject(GamedaysApi);
  private readonly router = inject(Router);
  readonly scenarios = signal<ScenarioView[]>([]);
  readonly runs = signal<RunState[]>([]);
  readonly error = signal('');
  readonly clock = clock;
  readonly duration = duration;

  constructor() {
    this.api.scenarios().subscribe({ next: (s) => this.scenarios.set(s.scenarios), error: (e: unknown) => this.error.set(describeError(e)) });
    live(() => this.api.runs().subscribe({ next: (r) => this.runs.set(r.runs), error: (e: unknown) => this.error.set(describeError(e)) }));
  }

  start(name: string): void {
    this.error.set('');
    this.api.start(name).subscribe({
      next: (run) => this.router.navigate(['/gamedays/runs', run.id]),
      error: (e: unknown) => this.error.set(describeError(e)),
    });
  }
}
