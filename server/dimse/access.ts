import net from 'node:net';
import type { Config } from '../../core/config/schema.ts';

/**
 * Who may do what over DICOM, per database: the pure decision. As in Orthanc since 1.9
 * (DicomAlwaysAllowStore on, DicomAlwaysAllowFind/Move/Get off), storing is open and query and
 * retrieve are for known nodes; unlike Orthanc's default, a known node is checked against its
 * host (a calling AE title costs nothing to spoof) and peers on this machine may query, so a
 * first findscu on one machine works.
 *
 * The decision is taken once per association, from what it negotiated: the calling AE title,
 * the peer's address and the database its called AE title maps to.
 */

export type DicomService = 'store' | 'query' | 'retrieve';
export const DICOM_SERVICES: readonly DicomService[] = ['store', 'query', 'retrieve'];

/** One entry of a dicomAccess list, as the configuration holds it. */
export type CallerSpec = NonNullable<NonNullable<Config['databases'][number]['dicomAccess']>['query']>[number];

export interface AllowedCaller {
  aeTitle: string;
  /** Configured host (name or address); absent: any host. */
  host?: string;
}

/** A rule with the remote nodes spelt out: what /api/status shows. */
export interface AccessRule {
  anyone: boolean;
  loopback: boolean;
  callers: AllowedCaller[];
}

export type TargetAccess = Record<DicomService, AccessRule>;
export type Rights = Record<DicomService, boolean>;

export interface RemoteNodeAddress {
  aeTitle: string;
  host: string;
}

export interface AccessPolicy {
  /** Database name → its rules. */
  databases: Map<string, TargetAccess>;
  /** DICOMDIR store AE title → its query and retrieve rules. */
  dicomdirStores: Map<string, Pick<TargetAccess, 'query' | 'retrieve'>>;
}

export interface Caller {
  callingAeTitle: string;
  /** The peer's IP address (IPv4-mapped IPv6 already unwrapped). */
  peerAddress: string | undefined;
}

const NOTHING: AccessRule = { anyone: false, loopback: false, callers: [] };

/** Spells out a configured list: remote nodes become their AE titles with their hosts. */
export function accessRule(specs: readonly CallerSpec[], remoteNodes: readonly RemoteNodeAddress[]): AccessRule {
  const rule: AccessRule = { anyone: false, loopback: false, callers: [] };
  const add = (caller: AllowedCaller) => {
    if (!rule.callers.some((c) => c.aeTitle === caller.aeTitle && c.host === caller.host)) rule.callers.push(caller);
  };
  for (const spec of specs) {
    if (typeof spec === 'string') {
      // A named remote node is that node: from its host only.
      const nodes = remoteNodes.filter((n) => n.aeTitle === spec);
      if (nodes.length === 0) add({ aeTitle: spec });
      for (const n of nodes) add({ aeTitle: n.aeTitle, host: n.host });
    } else if ('aeTitle' in spec) add({ aeTitle: spec.aeTitle, host: spec.host });
    else if ('remoteNodes' in spec) for (const n of remoteNodes) add({ aeTitle: n.aeTitle, host: n.host });
    else if ('loopback' in spec) rule.loopback = true;
    else if ('anyone' in spec) rule.anyone = true;
  }
  return rule;
}

/** 127.0.0.0/8 and ::1: the peer runs on this machine. */
export function isLoopback(address: string | undefined): boolean {
  if (address === undefined) return false;
  if (net.isIPv4(address)) return address.startsWith('127.');
  return net.isIPv6(address) && /^(0{0,4}:){2,7}0{0,3}1$/.test(address.toLowerCase());
}

/** Whether the rule admits the caller; addressesOf gives a configured host's current addresses. */
export function mayUse(rule: AccessRule, caller: Caller, addressesOf: (host: string) => ReadonlySet<string>): boolean {
  if (rule.anyone) return true;
  if (rule.loopback && isLoopback(caller.peerAddress)) return true;
  return rule.callers.some(
    (c) =>
      c.aeTitle === caller.callingAeTitle &&
      (c.host === undefined || (caller.peerAddress !== undefined && addressesOf(c.host).has(caller.peerAddress))),
  );
}

/**
 * What the caller may do on the association: stores go to `database`; queries and retrieves
 * answer from the DICOMDIR store of `dicomdirAeTitle` when the called AE title is one.
 */
export function decideAccess(
  policy: AccessPolicy,
  target: { database: string; dicomdirAeTitle?: string },
  caller: Caller,
  addressesOf: (host: string) => ReadonlySet<string>,
): Rights {
  const database = policy.databases.get(target.database);
  const dicomdir = target.dicomdirAeTitle === undefined ? undefined : policy.dicomdirStores.get(target.dicomdirAeTitle);
  const rule = (service: DicomService): AccessRule =>
    (service !== 'store' && dicomdir ? dicomdir[service] : database?.[service]) ?? NOTHING;
  return {
    store: mayUse(rule('store'), caller, addressesOf),
    query: mayUse(rule('query'), caller, addressesOf),
    retrieve: mayUse(rule('retrieve'), caller, addressesOf),
  };
}

/** The policy of a configuration (its lists defaulted by the schema). */
export function accessPolicy(config: Pick<Config, 'databases' | 'dicomdirStores' | 'remoteNodes'>): AccessPolicy {
  const nodes = config.remoteNodes.map((n) => ({ aeTitle: n.aeTitle, host: n.host }));
  return {
    databases: new Map(
      config.databases.map(({ name, dicomAccess: a }) => [
        name,
        { store: accessRule(a.store, nodes), query: accessRule(a.query, nodes), retrieve: accessRule(a.retrieve, nodes) },
      ]),
    ),
    dicomdirStores: new Map(
      config.dicomdirStores.map(({ aeTitle, dicomAccess: a }) => [
        aeTitle,
        { query: accessRule(a.query, nodes), retrieve: accessRule(a.retrieve, nodes) },
      ]),
    ),
  };
}

/** Every configured host a rule names: they are resolved ahead, off the association path. */
export function hostsOf(policy: AccessPolicy): string[] {
  const hosts = new Set<string>();
  const targets = [...policy.databases.values(), ...policy.dicomdirStores.values()];
  for (const t of targets) for (const rule of Object.values(t)) for (const c of rule.callers) if (c.host !== undefined) hosts.add(c.host);
  return [...hosts];
}

/** The policy as /api/status shows it: per database and DICOMDIR store, who may do what. */
export function describeAccess(policy: AccessPolicy): {
  databases: ({ name: string } & TargetAccess)[];
  dicomdirStores: ({ aeTitle: string } & Pick<TargetAccess, 'query' | 'retrieve'>)[];
} {
  return {
    databases: [...policy.databases].map(([name, t]) => ({ name, ...t })),
    dicomdirStores: [...policy.dicomdirStores].map(([aeTitle, t]) => ({ aeTitle, ...t })),
  };
}
