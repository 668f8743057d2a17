import { describe, expect, it } from 'vitest';
import { accessRule, decideAccess, isLoopback, mayUse, type AccessPolicy } from '../server/dimse/access.ts';

const nodes = [
  { aeTitle: 'PACS', host: 'pacs.example.org' },
  { aeTitle: 'VIEWER', host: '10.0.0.7' },
];
const resolved: Record<string, string[]> = { 'pacs.example.org': ['10.0.0.5', 'fd00::5'], '10.0.0.7': ['10.0.0.7'] };
const addressesOf = (host: string) => new Set(resolved[host] ?? []);

describe('DICOM access decision', () => {
  it('knows the loopback addresses', () => {
    expect(['127.0.0.1', '127.0.0.2', '127.255.255.254', '::1', '0:0:0:0:0:0:0:1'].every(isLoopback)).toBe(true);
    expect(['10.0.0.1', '::', '::2', 'fd00::1', '128.0.0.1', undefined].some(isLoopback)).toBe(false);
  });

  it('spells out remote nodes with their hosts; a named node is bound to its host', () => {
    expect(accessRule([{ remoteNodes: true }, { loopback: true }], nodes)).toEqual({ anyone: false, loopback: true, callers: nodes });
    expect(accessRule(['PACS', 'WORKSTATION', { aeTitle: 'LAPTOP', host: '10.0.0.9' }], nodes)).toEqual({
      anyone: false,
      loopback: false,
      callers: [{ aeTitle: 'PACS', host: 'pacs.example.org' }, { aeTitle: 'WORKSTATION' }, { aeTitle: 'LAPTOP', host: '10.0.0.9' }],
    });
  });

  it('admits a remote node only from an address of its host', () => {
    const rule = accessRule([{ remoteNodes: true }], nodes);
    expect(mayUse(rule, { callingAeTitle: 'PACS', peerAddress: '10.0.0.5' }, addressesOf)).toBe(true);
    expect(mayUse(rule, { callingAeTitle: 'PACS', peerAddress: 'fd00::5' }, addressesOf)).toBe(true);
    expect(mayUse(rule, { callingAeTitle: 'PACS', peerAddress: '10.0.0.7' }, addressesOf)).toBe(false);
    expect(mayUse(rule, { callingAeTitle: 'PACS', peerAddress: undefined }, addressesOf)).toBe(false);
    expect(mayUse(rule, { callingAeTitle: 'STRANGER', peerAddress: '10.0.0.5' }, addressesOf)).toBe(false);
    // Loopback is not in this rule.
    expect(mayUse(rule, { callingAeTitle: 'STRANGER', peerAddress: '127.0.0.1' }, addressesOf)).toBe(false);
  });

  it('answers a DICOMDIR store by its rule, and stores by the database behind it', () => {
    const open = { anyone: true, loopback: false, callers: [] };
    const none = { anyone: false, loopback: false, callers: [] };
    const policy: AccessPolicy = {
      databases: new Map([['Import', { store: open, query: open, retrieve: open }]]),
      dicomdirStores: new Map([['FILESET', { query: none, retrieve: none }]]),
    };
    const caller = { callingAeTitle: 'X', peerAddress: '10.1.1.1' };
    expect(decideAccess(policy, { database: 'Import' }, caller, addressesOf)).toEqual({ store: true, query: true, retrieve: true });
    expect(decideAccess(policy, { database: 'Import', dicomdirAeTitle: 'FILESET' }, caller, addressesOf)).toEqual({
      store: true,
      query: false,
      retrieve: false,
    });
    // A database without rules admits nobody.
    expect(decideAccess(policy, { database: 'Elsewhere' }, caller, addressesOf)).toEqual({ store: false, query: false, retrieve: false });
  });
});
