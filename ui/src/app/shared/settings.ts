import { HttpClient } from '@angular/common/http';
import { Injectable, computed, inject, signal } from '@angular/core';

import { describeError } from '../api/errors';

const TRACE_KEY = 'chaos-symphony.trace-url';
const GRAFANA_KEY = 'chaos-symphony.grafana-url';

/** Only http(s) addresses are kept: a setting must not become a `javascript:` link. */
export function web(url: unknown): string {
  if (typeof url !== 'string') return '';
  const trimmed = url.trim();
  return /^https?:\/\/[^\s]+$/.test(trimmed) ? trimmed.replace(/\/$/, '') : '';
}

/** The runner's defaults of the console's links (`GET /api/console/settings`). */
export interface ServerSettings {
  traceUrl: string | null;
  grafanaUrl: string | null;
}

/** The links the console has: a trace UI and Grafana. */
export type LinkName = 'trace' | 'grafana';

/** Where the address in force of a link comes from. */
export type LinkSource = 'browser' | 'server' | null;

const KEYS: Record<LinkName, string> = { trace: TRACE_KEY, grafana: GRAFANA_KEY };

/**
 * Where the console links out to: a trace UI (a URL with `{traceId}`, e.g. Jaeger's
 * `http://jaeger:16686/trace/{traceId}`) and Grafana. The runner may configure both
 * (`RUNNER_CONSOLE_TRACE_URL`, `RUNNER_CONSOLE_GRAFANA_URL`), read once when the console
 * starts; this browser's own values, set on the runtime page and kept in localStorage, win
 * over the runner's. The console works without either.
 */
@Injectable({ providedIn: 'root' })
export class ConsoleSettings {
  private readonly http = inject(HttpClient);

  /** This browser's own values ('' when it has none). */
  readonly browser = {
    trace: signal(web(localStorage.getItem(TRACE_KEY))),
    grafana: signal(web(localStorage.getItem(GRAFANA_KEY))),
  } as const;
  /** The runner's values ('' when it has none or could not be asked). */
  readonly server = {
    trace: signal(''),
    grafana: signal(''),
  } as const;
  /** Why the runner's values could not be read ('' when they could, or are not read yet). */
  readonly serverError = signal('');

  readonly traceUrl = computed(() => this.browser.trace() || this.server.trace());
  readonly grafanaUrl = computed(() => this.browser.grafana() || this.server.grafana());

  constructor() {
    this.http.get<Partial<ServerSettings>>('/api/console/settings').subscribe({
      next: (s) => {
        this.server.trace.set(web(s?.traceUrl));
        this.server.grafana.set(web(s?.grafanaUrl));
        this.serverError.set('');
      },
      error: (e: unknown) => this.serverError.set(describeError(e)),
    });
  }

  /** Where the address in force of `link` comes from; null when there is none. */
  sourceOf(link: LinkName): LinkSource {
    if (this.browser[link]()) return 'browser';
    return this.server[link]() ? 'server' : null;
  }

  /** Sets this browser's own values; an empty (or non-http) one leaves the runner's in force. */
  save(traceUrl: string, grafanaUrl: string): void {
    this.set('trace', traceUrl);
    this.set('grafana', grafanaUrl);
  }

  /** Forgets this browser's own value of `link`: the runner's is in force again. */
  clear(link: LinkName): void {
    this.set(link, '');
  }

  private set(link: LinkName, url: string): void {
    const value = web(url);
    this.browser[link].set(value);
    if (value) localStorage.setItem(KEYS[link], value);
    else localStorage.removeItem(KEYS[link]);
  }

  /** The trace UI's page of `traceId`, when a trace UI is set. */
  traceLink(traceId: string): string | null {
    const template = this.traceUrl();
    return template && template.includes('{traceId}') ? template.replace('{traceId}', encodeURIComponent(traceId)) : null;
  }
}
