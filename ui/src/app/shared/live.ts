import { DestroyRef, inject } from '@angular/core';

/** How often live views ask again. Short polling is the console's one live mechanism. */
export const LIVE_EVERY_MS = 2000;

/**
 * Calls `refresh` at once and every `everyMs` while the component lives, skipping rounds while
 * the tab is hidden (nobody is looking; the runner is spared).
 */
export function live(refresh: () => void, everyMs = LIVE_EVERY_MS): void {
  const timer = setInterval(() => {
    if (typeof document === 'undefined' || document.visibilityState !== 'hidden') refresh();
  }, everyMs);
  // The first round right after construction, once the component's inputs are set.
  const first = setTimeout(refresh, 0);
  inject(DestroyRef).onDestroy(() => {
    clearTimeout(first);
    clearInterval(timer);
  });
}
