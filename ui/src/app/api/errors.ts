import { HttpErrorResponse } from '@angular/common/http';

/** One line for a failed call: the API's own `error` message when it sent one. */
export function describeError(error: unknown): string {
  if (error instanceof HttpErrorResponse) {
    const message = (error.error as { error?: string } | null)?.error;
    if (error.status === 0) return 'the runner does not answer; is it running?';
    if (error.status === 401) return `401: an admin token is needed. ${message ?? ''}`.trim();
    if (error.status === 403) return `403: this token may not do that. ${message ?? ''}`.trim();
    return `${error.status}: ${message ?? error.statusText}`;
  }
  return String(error);
}

/** One of the API's per-field problems. */
export interface FieldProblem {
  field: string;
  message: string;
}

/** The API's per-field problems (`fields: [{field, message}]`) in its order, several per field kept. */
export function fieldProblems(error: unknown): FieldProblem[] {
  if (!(error instanceof HttpErrorResponse)) return [];
  const fields = (error.error as { fields?: unknown } | null)?.fields;
  if (!Array.isArray(fields)) return [];
  return fields
    .filter((f): f is FieldProblem => typeof f?.field === 'string' && typeof f?.message === 'string')
    .map((f) => ({ field: f.field, message: f.message }));
}

/** The API's per-field problems by field (the last one of a field when it has several). */
export function fieldErrors(error: unknown): Record<string, string> {
  return Object.fromEntries(fieldProblems(error).map((f) => [f.field, f.message]));
}
