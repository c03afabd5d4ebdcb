/** The services that find each other through discovery. */
export type ServiceKind = "edge" | "chat" | "presence" | "message-store" | "notifier";

/** One live process of a service. */
export interface Instance {
  id: string;
  /** host:port of its gRPC server. */
  address: string;
}

/**
 * Which instances of each service are alive. Static discovery (embedded profile)
 * reads address lists from the config; etcd discovery (production) keeps each
 * instance under a lease, so a process that dies leaves the set when its lease
 * expires, and watchers learn of every change.
 */
export interface Discovery {
  /**
   * Whether instances come and go at run time. A dynamic discovery is what gRPC
   * channels resolve (meshchat:///<service>); a fixed one hands out addresses.
   */
  readonly dynamic: boolean;
  /**
   * Calls `listener` when this process's registration is lost (its etcd lease
   * expired): others no longer see it, so it must drop what its membership let it
   * assume (conversations it owned). A fixed discovery never loses it.
   */
  onLost(listener: () => void): void;
  /** The live instances of a service, sorted by id. */
  instances(service: ServiceKind): Instance[];
  /** Calls `listener` after every change of a service's instances; returns an unsubscribe. */
  watch(service: ServiceKind, listener: (instances: Instance[]) => void): () => void;
  /** Announces this process; keys it puts live exactly as long as the process does. */
  register(service: ServiceKind, self: Instance): Promise<void>;
  /**
   * Resolves once this process (`candidate`, its instance id) alone holds `name` among the
   * processes that ask for it (an election; a fixed discovery has one process per service, so at
   * once). `onLost` is called if it loses it (its lease expired): another may hold it by then.
   */
  lead(name: string, candidate: string, onLost: () => void): Promise<Leadership>;
  /** Leaves the set first thing on drain, so peers stop sending new work here. */
  deregister(): Promise<void>;
  close(): Promise<void>;
}

/** An election won. */
export interface Leadership {
  /**
   * A `performance.now()` time before which no other process can have been elected, or 0 when
   * the discovery cannot vouch for any (a fixed one, which cannot stop a second process started
   * by mistake). The message log skips its per-tick fence read while it holds (docs/cassandra-log.md).
   */
  heldUntil(): number;
}
