import path from 'node:path';
import type { ResolvedConfig } from '../../core/config/load.ts';
import { dfError } from '../../core/errors.ts';
import type { DestinationCounts } from '../../core/store/outbox-store.ts';
import { SqlIndex } from '../../core/store/sql/sql-index.ts';
import { openIndexDatabase } from '../../core/store/sql/open.ts';
import { SqlOutbox } from '../../core/store/sql/sql-outbox.ts';

/**
 * `dicomflow outbox` and `dicomflow outbox retry`: on the data directory directly, whether or not
 * the server runs (a running server picks rescheduled entries up within a second).
 */
async function openOutbox(config: ResolvedConfig): Promise<{ outbox: SqlOutbox; close: () => Promise<void> }> {
  const index = new SqlIndex(await openIndexDatabase(config, { existing: true }));
  return { outbox: new SqlOutbox(index.connection, path.join(config.dataDir, 'outbox')), close: () => index.close() };
}

/** Per destination (every configured one, and any with entries): the figures and the dead letters' ids. */
export async function outboxStatus(config: ResolvedConfig): Promise<(DestinationCounts & { configured: boolean; deadIds: string[] })[]> {
  const { outbox, close } = await openOutbox(config);
  try {
    const counts = new Map((await outbox.counts()).map((c) => [c.destination, c]));
    const names = [...new Set([...config.remoteNodes.map((n) => n.aeTitle), ...counts.keys()])];
    return await Promise.all(
      names.map(async (name) => ({
        ...(counts.get(name) ?? {
          destination: name,
          queued: 0,
          sending: 0,
          delivered: 0,
          dead: 0,
          nextAttemptAt: null,
          lastError: null,
          lastErrorAt: null,
          lastDeliveredAt: null,
        }),
        configured: config.remoteNodes.some((n) => n.aeTitle === name),
        deadIds: (await outbox.list({ destination: name, state: 'dead', limit: 100 })).map((e) => e.id),
      })),
    );
  } finally {
    await close();
  }
}

export async function printOutbox(config: ResolvedConfig, json: boolean): Promise<void> {
  const rows = await outboxStatus(config);
  if (json) {
    console.log(JSON.stringify(rows, null, 2));
    return;
  }
  if (rows.length === 0) {
    console.log('no remote nodes configured and nothing in the outbox');
    return;
  }
  const header = ['destination', 'queued', 'in flight', 'delivered', 'dead', 'next attempt', 'last error'];
  const table = rows.map((r) => [
    r.configured ? r.destination : `${r.destination} (not configured)`,
    String(r.queued),
    String(r.sending),
    String(r.delivered),
    String(r.dead),
    r.nextAttemptAt ?? '-',
    r.lastError ? `${r.lastErrorAt ?? ''} ${r.lastError}`.trim() : '-',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((t) => t[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join('  ');
  console.log(line(header));
  for (const t of table) console.log(line(t));
  for (const r of rows)
    if (r.dead > 0) console.log(`dead letters for ${r.destination}: ${r.deadIds.join(' ')}${r.dead > r.deadIds.length ? ' …' : ''}`);
}

/** Queues dead letters of a destination again (all, or the given ids); returns how many. */
export async function retryOutbox(config: ResolvedConfig, destination: string, ids: string[] | 'all'): Promise<number> {
  const { outbox, close } = await openOutbox(config);
  try {
    const known =
      config.remoteNodes.some((n) => n.aeTitle === destination) || (await outbox.counts()).some((c) => c.destination === destination);
    if (!known)
      throw dfError(
        'DF_ERR_DESTINATION_UNKNOWN',
        `no remote node "${destination}" in remoteNodes and no outbox entries for it (configured: ${config.remoteNodes.map((n) => n.aeTitle).join(', ') || 'none'})`,
      );
    return await outbox.retryDead(destination, ids === 'all' ? undefined : ids);
  } finally {
    await close();
  }
}
