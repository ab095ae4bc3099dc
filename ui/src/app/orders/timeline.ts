import { HistoryLine } from '../api/orders';

/** One step of an order's saga as the timeline shows it: forward or compensation. */
export interface TimelineRow {
  step: string;
  /** `forward` (the step itself), `compensation` (undoing it), or `end` (the saga's end). */
  phase: 'forward' | 'compensation' | 'end';
  /** The last thing that happened: requested, succeeded, failed, timed-out, dead-lettered, compensated … */
  outcome: string;
  attempts: number;
  /** When it was first asked for, and when its outcome came, from the order's creation. */
  startedAfterMs: number;
  tookMs: number | null;
  detail?: string;
}

/** History actions as one word for the status badge. */
function outcomeOf(action: string): string {
  switch (action) {
    case 'timed out':
    case 'compensation timed out':
      return 'timed-out';
    case 'compensation failed':
      return 'failed';
    case 'compensation dead-lettered':
      return 'dead-lettered';
    default:
      return action.replace(/\s+/g, '-');
  }
}

const COMPENSATION = ['compensating', 'compensated', 'compensation failed', 'compensation timed out', 'compensation dead-lettered', 'not compensated'];
const ENDS = ['completed', 'cancelled', 'failed'];

/**
 * Folds an order's saga history into one row per step and direction: attempts counted,
 * the time from the first request to the outcome, the last detail.
 */
export function timeline(history: HistoryLine[], createdAtMs: number, saga = 'order'): TimelineRow[] {
  const rows: TimelineRow[] = [];
  const open = new Map<string, TimelineRow>();
  for (const line of history) {
    const isEnd = line.step === saga && ENDS.includes(line.action);
    const phase: TimelineRow['phase'] = isEnd ? 'end' : COMPENSATION.includes(line.action) ? 'compensation' : 'forward';
    const key = `${phase}:${line.step}`;
    let row = open.get(key);
    if (!row) {
      row = { step: line.step, phase, outcome: outcomeOf(line.action), attempts: 0, startedAfterMs: line.atMs - createdAtMs, tookMs: null, detail: line.detail };
      open.set(key, row);
      rows.push(row);
    }
    if (line.action === 'requested' || line.action === 'compensating') {
      row.attempts += 1;
      row.outcome = phase === 'compensation' ? 'compensating' : 'requested';
    } else {
      row.outcome = outcomeOf(line.action);
      // The end of the saga is an instant, not a step that takes time.
      row.tookMs = phase === 'end' ? null : line.atMs - createdAtMs - row.startedAfterMs;
    }
    if (line.detail) row.detail = line.detail;
  }
  return rows;
}
