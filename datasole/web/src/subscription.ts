// Helpers shared by every subscription the client hands out.

/** Unsubscribe stops a subscription; it is a function and also has an unsubscribe method. */
export interface Unsubscribe {
  (): void;
  unsubscribe(): void;
}

/** unsubscriber wraps a stop function so it can be called directly or as .unsubscribe(). */
export function unsubscriber(stop: () => void): Unsubscribe {
  const fn = (() => {
    stop();
  }) as Unsubscribe;
  fn.unsubscribe = fn;
  return fn;
}

/** deliver calls every listener with value; a throwing listener is reported, not propagated. */
export function deliver<T>(listeners: Iterable<(value: T) => void>, value: T): void {
  for (const fn of [...listeners]) {
    try {
      fn(value);
    } catch (e) {
      // Rethrown from a fresh task so it reaches window.onerror without breaking delivery.
      setTimeout(() => {
        throw e;
      });
    }
  }
}
