/**
 * Something derived from an immutable object, kept on the object itself — a non-enumerable
 * symbol property — instead of in a WeakMap keyed by it.
 *
 * Why not a WeakMap: V8 promoted the values of WeakMap entries whose keys had died young, to
 * the old generation, where only a full mark-compact frees them (measured in memo.test.ts:
 * 20,000 short-lived keys with 100-object values promote 15 MB through a WeakMap on Node 20,
 * 7–10 MB on Node 24, 0.2–0.3 MB kept on the objects). A runtime change replaces the objects
 * of the one service it touches, so the WeakMap memos keyed by them (the ipvsadm view of a
 * service, its server keys, the director's specs, the plane's mismatches) promoted ~29 KB per
 * change at 1,000 real servers: the old generation grew 1.5 MB per scavenge, scavenges took
 * 1.6–6.5 ms, and 1,500 changes brought a mark-compact. Kept on the objects: 5.6 KB per
 * change promoted, a flat old generation, scavenges of 0.6–1.1 ms, and 14% less CPU per
 * change (docs/benchmarks.md, 2026-12-03).
 *
 * The property is non-enumerable: `{ ...obj }` (how a changed configuration object is made)
 * does not copy it, and JSON, structured clone, Object.keys and deepStrictEqual do not see
 * it. One symbol per memo (a module's constant), never one per use: an object keeps one
 * property per kind of memo whatever happens. An object that cannot take a property (frozen,
 * sealed) is simply not memoized.
 */
export class ObjectMemo<K extends object, V> {
  private readonly slot: symbol;

  constructor(name: string) {
    this.slot = Symbol(name);
  }

  get(key: K): V | undefined {
    return (key as Record<symbol, V | undefined>)[this.slot];
  }

  set(key: K, value: V): void {
    // Reflect's answers false where Object's throws (a frozen or non-extensible object).
    Reflect.defineProperty(key, this.slot, { value, writable: true, configurable: true, enumerable: false });
  }
}

/**
 * An ObjectMemo whose entries belong to an owner: one made for another owner (another
 * director's memo, or the same memo before its context changed) reads as absent and is
 * replaced. The owner is compared by identity; a new owner object drops every entry at once.
 */
export class OwnedMemo<K extends object, V> {
  private readonly memo: ObjectMemo<K, { readonly owner: object; readonly value: V }>;

  constructor(name: string) {
    this.memo = new ObjectMemo(name);
  }

  get(key: K, owner: object): V | undefined {
    const e = this.memo.get(key);
    return e !== undefined && e.owner === owner ? e.value : undefined;
  }

  set(key: K, owner: object, value: V): void {
    this.memo.set(key, { owner, value });
  }
}
