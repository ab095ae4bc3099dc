import { FAULT_KINDS, RuleDraft, TARGET_KINDS, draftOf, keepUnformed, ruleOf } from './rule-form';

function draft(overrides: Partial<RuleDraft>): RuleDraft {
  return {
    id: 'r', targetKind: 'service', service: 'payment-svc', handler: 'payment.charge', topic: 'payment.requested', side: 'produce',
    route: '/api/orders', faultKind: 'latency', fixed: '1s', min: '', max: '', jitter: '10ms', message: 'boom', status: 503,
    probability: '0.5', keySample: '0.25', ttl: '10m', allowDrop: true, ...overrides,
  };
}

describe('ruleOf', () => {
  it('sends only the fields of the chosen target', () => {
    expect(ruleOf(draft({ targetKind: 'service' })).target).toEqual({ kind: 'service', service: 'payment-svc' });
    expect(ruleOf(draft({ targetKind: 'handler', service: '' })).target).toEqual({ kind: 'handler', handler: 'payment.charge' });
    expect(ruleOf(draft({ targetKind: 'topic' })).target).toEqual({ kind: 'topic', topic: 'payment.requested', side: 'produce' });
    expect(ruleOf(draft({ targetKind: 'http' })).target).toEqual({ kind: 'http', service: 'payment-svc', route: '/api/orders' });
    expect(ruleOf(draft({ targetKind: 'store' })).target).toEqual({ kind: 'store', service: 'payment-svc' });
    expect(ruleOf(draft({ targetKind: 'broker' })).target).toEqual({ kind: 'broker' });
  });

  it('sends only the fields of the chosen fault', () => {
    expect(ruleOf(draft({ faultKind: 'latency' })).fault).toEqual({ kind: 'latency', fixed: '1s', jitter: '10ms' });
    expect(ruleOf(draft({ faultKind: 'error' })).fault).toEqual({ kind: 'error', message: 'boom' });
    expect(ruleOf(draft({ faultKind: 'http_status' })).fault).toEqual({ kind: 'http_status', status: 503 });
    expect(ruleOf(draft({ faultKind: 'drop' })).allow_drop).toBeTrue();
    expect(ruleOf(draft({ faultKind: 'error' })).allow_drop).toBeUndefined();
    for (const kind of ['duplicate', 'corrupt', 'crash', 'down'] as const) expect(ruleOf(draft({ faultKind: kind })).fault).toEqual({ kind });
  });

  it('gives numbers where the API wants numbers and leaves out what is empty', () => {
    const rule = ruleOf(draft({ probability: '', keySample: '0.25', ttl: '' }));
    expect(rule.probability).toBeUndefined();
    expect(rule.key_sample).toBe(0.25);
    expect(rule.ttl).toBeUndefined();
  });

  it('round-trips every target and fault kind through the form', () => {
    for (const targetKind of TARGET_KINDS) {
      for (const faultKind of FAULT_KINDS) {
        const rule = ruleOf(draft({ targetKind, faultKind }));
        expect(ruleOf(draftOf(rule))).toEqual(rule);
      }
    }
  });
});

describe('keepUnformed', () => {
  it('keeps what the form does not edit and takes the rest from the form', () => {
    const original = { ...ruleOf(draft({})), max_count: 5, rate: 2, description: 'keep me', end: '2030-01-01T00:00:00Z' };
    const edited = ruleOf(draft({ faultKind: 'error', message: 'new' }));
    const saved = keepUnformed(original, edited);
    expect(saved.fault).toEqual({ kind: 'error', message: 'new' });
    expect(saved.max_count).toBe(5);
    expect(saved.rate).toBe(2);
    expect(saved.description).toBe('keep me');
  });
});
