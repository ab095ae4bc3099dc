import { timeline } from './timeline';

describe('timeline', () => {
  const created = 1_000;

  it('folds a completed saga into one row per step and the end', () => {
    const rows = timeline(
      [
        { step: 'payment', action: 'requested', detail: 'attempt 1', atMs: 1_005 },
        { step: 'payment', action: 'succeeded', atMs: 1_020 },
        { step: 'inventory', action: 'requested', detail: 'attempt 1', atMs: 1_020 },
        { step: 'inventory', action: 'succeeded', atMs: 1_031 },
        { step: 'order', action: 'completed', atMs: 1_040 },
      ],
      created,
    );
    expect(rows.map((r) => [r.step, r.phase, r.outcome, r.startedAfterMs, r.tookMs])).toEqual([
      ['payment', 'forward', 'succeeded', 5, 15],
      ['inventory', 'forward', 'succeeded', 20, 11],
      ['order', 'end', 'completed', 40, null],
    ]);
  });

  it('counts attempts, shows timeouts and the compensation of each completed step', () => {
    const rows = timeline(
      [
        { step: 'payment', action: 'requested', detail: 'attempt 1', atMs: 1_000 },
        { step: 'payment', action: 'succeeded', atMs: 1_010 },
        { step: 'shipping', action: 'requested', detail: 'attempt 1', atMs: 1_010 },
        { step: 'shipping', action: 'timed out', detail: 'attempt 1, retrying', atMs: 11_010 },
        { step: 'shipping', action: 'requested', detail: 'attempt 2', atMs: 11_510 },
        { step: 'shipping', action: 'failed', detail: 'no shipping to ZZ', atMs: 11_520 },
        { step: 'payment', action: 'compensating', detail: 'attempt 1', atMs: 11_520 },
        { step: 'payment', action: 'compensated', atMs: 11_530 },
        { step: 'order', action: 'cancelled', detail: 'shipping failed', atMs: 11_530 },
      ],
      created,
    );
    const shipping = rows.find((r) => r.step === 'shipping');
    expect(shipping?.attempts).toBe(2);
    expect(shipping?.outcome).toBe('failed');
    expect(shipping?.detail).toBe('no shipping to ZZ');
    const undo = rows.find((r) => r.phase === 'compensation');
    expect(undo?.step).toBe('payment');
    expect(undo?.outcome).toBe('compensated');
    expect(undo?.tookMs).toBe(10);
    expect(rows.at(-1)?.outcome).toBe('cancelled');
  });

  it('leaves a step still waiting as requested, without a duration', () => {
    const rows = timeline([{ step: 'payment', action: 'requested', detail: 'attempt 1', atMs: 1_002 }], created);
    expect(rows[0].outcome).toBe('requested');
    expect(rows[0].tookMs).toBeNull();
  });
});
