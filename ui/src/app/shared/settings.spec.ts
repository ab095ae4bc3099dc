import { ConsoleSettings } from './settings';

describe('ConsoleSettings', () => {
  beforeEach(() => localStorage.clear());

  it('keeps http(s) addresses only, and links a trace by its template', () => {
    const settings = new ConsoleSettings();
    settings.save('javascript:alert(1)//{traceId}', 'http://grafana:3000/');
    expect(settings.traceUrl()).toBe('');
    expect(settings.traceLink('abc')).toBeNull();
    expect(settings.grafanaUrl()).toBe('http://grafana:3000');
    settings.save('http://jaeger:16686/trace/{traceId}', '');
    expect(settings.traceLink('4bf92f35')).toBe('http://jaeger:16686/trace/4bf92f35');
    expect(new ConsoleSettings().traceUrl()).toBe('http://jaeger:16686/trace/{traceId}');
  });
});
