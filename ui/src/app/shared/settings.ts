import { Injectable, signal } from '@angular/core';

const TRACE_KEY = 'chaos-symphony.trace-url';
const GRAFANA_KEY = 'chaos-symphony.grafana-url';

/** Only http(s) addresses are kept: a setting must not become a `javascript:` link. */
function web(url: string): string {
  const trimmed = url.trim();
  return /^https?:\/\/[^\s]+$/.test(trimmed) ? trimmed.replace(/\/$/, '') : '';
}

/**
 * Where this browser's console links out to, set on the runtime page and kept in
 * localStorage: a trace UI (a URL with `{traceId}`, e.g. Jaeger's
 * `http://jaeger:16686/trace/{traceId}`) and Grafana. The console works without either.
 */
@Injectable({ providedIn: 'root' })
export class ConsoleSettings {
  readonly traceUrl = signal(web(localStorage.getItem(TRACE_KEY) ?? ''));
  readonly grafanaUrl = signal(web(localStorage.getItem(GRAFANA_KEY) ?? ''));

  save(traceUrl: string, grafanaUrl: string): void {
    this.traceUrl.set(web(traceUrl));
    this.grafanaUrl.set(web(grafanaUrl));
    localStorage.setItem(TRACE_KEY, this.traceUrl());
    localStorage.setItem(GRAFANA_KEY, this.grafanaUrl());
  }

  /** The trace UI's page of `traceId`, when a trace UI is set. */
  traceLink(traceId: string): string | null {
    const template = this.traceUrl();
    return template && template.includes('{traceId}') ? template.replace('{traceId}', encodeURIComponent(traceId)) : null;
  }
}
