import { Component } from '@angular/core';
import { RouterLink, RouterLinkActive, RouterOutlet } from '@angular/router';

import { TokenBox } from './shared/token-box';

/** The console's shell: the navigation and the page the route names. */
@Component({
  selector: 'app-root',
  imports: [RouterOutlet, RouterLink, RouterLinkActive, TokenBox],
  template: `
    <header>
      <a class="brand" routerLink="/">Chaos Symphony</a>
      <nav aria-label="Sections">
        <a routerLink="/orders" routerLinkActive="active" ariaCurrentWhenActive="page">Orders</a>
        <a routerLink="/dead-letters" routerLinkActive="active" ariaCurrentWhenActive="page">Dead letters</a>
        <a routerLink="/chaos" routerLinkActive="active" ariaCurrentWhenActive="page">Chaos</a>
        <a routerLink="/canary" routerLinkActive="active" ariaCurrentWhenActive="page">Canary</a>
        <a routerLink="/slo" routerLinkActive="active" ariaCurrentWhenActive="page">SLOs</a>
        <a routerLink="/gamedays" routerLinkActive="active" ariaCurrentWhenActive="page">Game days</a>
        <a routerLink="/runtime" routerLinkActive="active" ariaCurrentWhenActive="page">Runtime</a>
      </nav>
      <app-token-box />
    </header>
    <main>
      <router-outlet />
    </main>
  `,
  styles: `
    header { display: flex; align-items: center; gap: 2rem; padding: 0.6rem 1.2rem; background: #1b1f24; }
    .brand { color: #fff; font-weight: 700; text-decoration: none; }
    nav { display: flex; gap: 1rem; }
    nav a { color: #d0d7de; text-decoration: none; padding: 0.2rem 0; border-bottom: 2px solid transparent; }
    nav a.active { color: #fff; border-bottom-color: #fff; }
    main { padding: 1.2rem; max-width: 1200px; }
  `,
})
export class App {}
