import { Component, inject, signal } from '@angular/core';
import { FormsModule } from '@angular/forms';

import { AdminToken } from '../api/admin-token';

/** The header's admin-token control: asked once, then shown as set, with a way to forget it. */
@Component({
  selector: 'app-token-box',
  imports: [FormsModule],
  template: `
    @if (token.value()) {
      <span class="set">admin token set</span>
      <button type="button" (click)="token.set('')">Forget</button>
    } @else {
      <form (ngSubmit)="save()">
        <label class="visually-hidden" for="admin-token">Admin token</label>
        <input id="admin-token" name="token" type="password" placeholder="admin token" autocomplete="off" [(ngModel)]="draft" />
        <button type="submit">Use</button>
      </form>
    }
  `,
  styles: `
    :host { margin-left: auto; display: flex; gap: 0.5rem; align-items: center; color: #d0d7de; font-size: 0.85rem; }
    form { display: flex; gap: 0.4rem; }
    .visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
  `,
})
export class TokenBox {
  readonly token = inject(AdminToken);
  draft = '';

  save(): void {
    this.token.set(this.draft);
    this.draft = '';
  }
}
