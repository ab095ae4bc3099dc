import { HttpTestingController } from '@angular/common/http/testing';
import { TestBed } from '@angular/core/testing';

import { testProviders } from '../testing.spec';
import { ConsoleSettings } from './settings';

describe('ConsoleSettings', () => {
  let http: HttpTestingController;

  function start(): ConsoleSettings {
    const settings = TestBed.inject(ConsoleSettings);
    http = TestBed.inject(HttpTestingController);
    return settings;
  }

  function answer(body: object): void {
    const request = http.expectOne('/api/console/settings');
    expect(request.request.method).toBe('GET');
    request.flush(body);
  }

  beforeEach(() => {
    localStorage.clear();
    TestBed.configureTestingModule({ providers: testProviders() });
  });

  afterEach(() => {
    http.verify();
    localStorage.clear();
  });

  it('keeps http(s) addresses only, and links a trace by its template', () => {
    const settings = start();
    answer({ traceUrl: null, grafanaUrl: null });
    settings.save('javascript:alert(1)//{traceId}', 'http://grafana:3000/');
    expect(settings.traceUrl()).toBe('');
    expect(settings.traceLink('abc')).toBeNull();
    expect(settings.grafanaUrl()).toBe('http://grafana:3000');
    settings.save('http://jaeger:16686/trace/{traceId}', '');
    expect(settings.traceLink('4bf92f35')).toBe('http://jaeger:16686/trace/4bf92f35');
    expect(localStorage.getItem('chaos-symphony.trace-url')).toBe('http://jaeger:16686/trace/{traceId}');
    expect(localStorage.getItem('chaos-symphony.grafana-url')).toBeNull();
  });

  it("uses the server's addresses when this browser has none", () => {
    const settings = start();
    expect(settings.sourceOf('trace')).toBeNull();
    answer({ traceUrl: 'http://jaeger:16686/trace/{traceId}', grafanaUrl: 'https://grafana.example/' });
    expect(settings.traceLink('t1')).toBe('http://jaeger:16686/trace/t1');
    expect(settings.grafanaUrl()).toBe('https://grafana.example');
    expect(settings.sourceOf('trace')).toBe('server');
    expect(settings.sourceOf('grafana')).toBe('server');
  });

  it("lets this browser's own address win, and brings the server's back when it is cleared", () => {
    localStorage.setItem('chaos-symphony.grafana-url', 'http://my-grafana:3000');
    const settings = start();
    answer({ traceUrl: null, grafanaUrl: 'http://grafana:3000' });
    expect(settings.grafanaUrl()).toBe('http://my-grafana:3000');
    expect(settings.sourceOf('grafana')).toBe('browser');
    expect(settings.sourceOf('trace')).toBeNull();
    settings.clear('grafana');
    expect(settings.grafanaUrl()).toBe('http://grafana:3000');
    expect(settings.sourceOf('grafana')).toBe('server');
    expect(localStorage.getItem('chaos-symphony.grafana-url')).toBeNull();
  });

  it('refuses non-http addresses from the server too', () => {
    const settings = start();
    answer({ traceUrl: 'javascript:alert(1)//{traceId}', grafanaUrl: 42 });
    expect(settings.traceUrl()).toBe('');
    expect(settings.traceLink('x')).toBeNull();
    expect(settings.grafanaUrl()).toBe('');
  });

  it('has no server defaults when the call fails, and says why', () => {
    localStorage.setItem('chaos-symphony.trace-url', 'http://jaeger:16686/trace/{traceId}');
    const settings = start();
    http.expectOne('/api/console/settings').flush({ error: 'no route' }, { status: 404, statusText: 'Not Found' });
    expect(settings.serverError()).toContain('404');
    expect(settings.grafanaUrl()).toBe('');
    expect(settings.traceLink('t')).toBe('http://jaeger:16686/trace/t');
  });
});
