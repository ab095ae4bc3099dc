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

/** The API's per-field problems (`fields: [{field, message}]`) by field. */
export function fieldErrors(error: unknown): Record<string, string> {
  if (!(error instanceof HttpErrorResponse)) return {};
  const fields = (error.error as { fields?: { field: string; message: string }[] } | null)?.fields ?? [];
  return Object.fromEntries(fields.map((f) => [f.field, f.message]));
}
