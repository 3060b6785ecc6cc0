/**
 * A value per real server of a service, kept by service key and then server key, so that it
 * is found with the two keys as they are: no `service|server` string is built and hashed on
 * every lookup (a /metrics scrape at 1,000 real servers looks up thousands). A service whose
 * last server is deleted is forgotten. Pure.
 */
export class ServerMap<V> {
  private readonly byService = new Map<string, Map<string, V>>();

  get(service: string, server: string): V | undefined {
    return this.byService.get(service)?.get(server);
  }

  set(service: string, server: string, value: V): void {
    let of = this.byService.get(service);
    if (of === undefined) this.byService.set(service, (of = new Map()));
    of.set(server, value);
  }

  /** Forget one server's value; the value it had. */
  delete(service: string, server: string): V | undefined {
    const of = this.byService.get(service);
    const v = of?.get(server);
    of?.delete(server);
    if (of?.size === 0) this.byService.delete(service);
    return v;
  }

  /** The values of a service's servers, by server key (undefined: none). */
  service(service: string): ReadonlyMap<string, V> | undefined {
    return this.byService.get(service);
  }

  /** Forget a service and every value of its servers. */
  deleteService(service: string): void {
    this.byService.delete(service);
  }
}
