import { Component } from '@angular/core';
import { RouterLink } from '@angular/router';

/** A path the console has no page for. */
@Component({
  selector: 'app-not-found',
  imports: [RouterLink],
  template: `<h1>No such page</h1><p>Go to the <a routerLink="/orders">orders</a>.</p>`,
})
export class NotFound {}
