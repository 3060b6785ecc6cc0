/**
 * A serial queue: each task starts once the one before it settled (fulfilled or rejected),
 * so a component's state changes never interleave. A rejection reaches its caller and
 * never stalls the queue.
 */
export type Serial = <T>(fn: () => Promise<T>) => Promise<T>;

export function serialQueue(): Serial {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(fn: () => Promise<T>): Promise<T> => {
    const next = tail.then(fn, fn);
    tail = next.catch(() => undefined);
    return next;
  };
}
