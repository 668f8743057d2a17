import dns from 'node:dns';
import type { Logger } from 'pino';

type Lookup = (host: string) => Promise<string[]>;

const lookupAll: Lookup = async (host) => (await dns.promises.lookup(host, { all: true, verbatim: true })).map((a) => a.address);

/**
 * The addresses of the hosts the DICOM access rules name, resolved ahead and refreshed on a
 * timer: an association is decided without waiting on DNS. A host that does not resolve
 * matches no peer until it does (a rule then admits less, never more).
 */
export class PeerHosts {
  private readonly addresses = new Map<string, ReadonlySet<string>>();
  private readonly failing = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private readonly hosts: readonly string[];
  private readonly log: Logger;
  private readonly lookup: Lookup;

  constructor(hosts: readonly string[], log: Logger, lookup: Lookup = lookupAll) {
    this.hosts = hosts;
    this.log = log;
    this.lookup = lookup;
  }

  addressesOf = (host: string): ReadonlySet<string> => this.addresses.get(host) ?? EMPTY;

  async refresh(): Promise<void> {
    await Promise.all(
      this.hosts.map(async (host) => {
        try {
          this.addresses.set(host, new Set(await this.lookup(host)));
          this.failing.delete(host);
        } catch (err) {
          // A name that stopped resolving keeps its last addresses; say so once per outage.
          if (!this.failing.has(host))
            this.log.warn(
              { code: 'DF_ERR_HOST_UNRESOLVED', host, err: (err as Error).message },
              'a host named in dicomAccess or remoteNodes does not resolve; callers from it are refused until it does',
            );
          this.failing.add(host);
        }
      }),
    );
  }

  /** Resolves now, then every intervalMs. */
  async start(intervalMs: number): Promise<void> {
    await this.refresh();
    if (this.hosts.length === 0) return;
    this.timer = setInterval(() => void this.refresh(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

const EMPTY: ReadonlySet<string> = new Set();
