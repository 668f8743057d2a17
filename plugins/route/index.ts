import fs from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { readFileMetaOf } from '../../core/dicom/part10.ts';
import { dfError } from '../../core/errors.ts';
import { engineServices } from '../../core/jobs/services.ts';
import { definePlugin } from '../../core/plugin.ts';
import type { NewOutboxEntry, OutboxEntry } from '../../core/store/outbox-store.ts';

// How often a step with "wait" looks at its entries; delivery itself is pushed by server/route.
const WAIT_POLL_MS = 250;

/**
 * Queues the job's instances for remote DICOM nodes. The step only puts them in the durable
 * outbox (each entry keeps its own hard link to the bytes), so it succeeds whether or not the
 * destination is up, and a later delete-source cannot lose an object not yet delivered; the
 * server's outbox sender delivers them, retrying with backoff. With `wait`, the step stays until
 * every object is delivered (or fails if one goes to the dead letters).
 */
export default definePlugin({
  name: 'route',
  version: '1.0.0',
  description: 'Send the instances to remote DICOM nodes (C-STORE) through a durable outbox with retries.',
  runsIn: 'main',
  consumes: ['instances'],
  produces: ['tables'],
  options: {
    type: 'object',
    additionalProperties: false,
    required: ['destination'],
    properties: {
      destination: {
        description: 'AE title of a node in remoteNodes, or a list of them (each gets every object).',
        anyOf: [
          { type: 'string', minLength: 1 },
          { type: 'array', items: { type: 'string', minLength: 1 }, minItems: 1, uniqueItems: true },
        ],
      },
      objects: {
        enum: ['inputs', 'emitted', 'all'],
        default: 'inputs',
        description: 'inputs: the instances the step works on; emitted: the DICOM objects earlier steps emitted; all: both.',
      },
      wait: {
        type: 'boolean',
        default: false,
        description: 'Stay until every object is delivered; fail if one goes to the dead letters. Off: succeed once queued.',
      },
    },
  },
  check(options, env) {
    if (env.remoteNodes === undefined) return [];
    const names = typeof options.destination === 'string' ? [options.destination] : options.destination;
    return names.flatMap((name, i) =>
      env.remoteNodes!.includes(name)
        ? []
        : [
            {
              pointer: typeof options.destination === 'string' ? '/destination' : `/destination/${i}`,
              message: `unknown destination "${name}" (remoteNodes: ${env.remoteNodes!.join(', ') || 'none'})`,
            },
          ],
    );
  },
  async run(ctx, options) {
    const services = engineServices(ctx.services);
    const destinations = typeof options.destination === 'string' ? [options.destination] : options.destination;
    for (const d of destinations) {
      // The configuration may have changed since the pipeline loaded.
      if (!services.remoteNodes.includes(d))
        throw dfError(
          'DF_ERR_DESTINATION_UNKNOWN',
          `no remote node "${d}" in remoteNodes (configured: ${services.remoteNodes.join(', ') || 'none'})`,
        );
    }
    const objects: { file: string; sourceKey: string }[] = [];
    if (options.objects !== 'emitted')
      for (const input of ctx.inputs) objects.push({ file: input.path, sourceKey: `object:${input.objectId}` });
    if (options.objects !== 'inputs') {
      for (const o of ctx.previousOutputs)
        if (o.kind === 'instance' && o.path) objects.push({ file: o.path, sourceKey: `emitted:${o.path}` });
    }
    const entries: NewOutboxEntry[] = [];
    for (const o of objects) {
      const handle = await fs.open(o.file, 'r');
      let meta;
      try {
        meta = await readFileMetaOf(handle);
      } finally {
        await handle.close();
      }
      for (const destination of destinations) {
        entries.push({
          destination,
          file: o.file,
          sopClassUid: meta.sopClassUid,
          sopInstanceUid: meta.sopInstanceUid,
          transferSyntaxUid: meta.transferSyntaxUid,
          sourceKey: o.sourceKey,
          jobId: ctx.job.id,
          stepId: ctx.step.id,
        });
      }
    }
    const queued = await services.outbox.enqueue(entries);
    ctx.log.info(`queued ${objects.length} object(s) for ${destinations.join(', ')}`, { entries: queued.length });
    const table = (list: OutboxEntry[]) =>
      list.map((e) => ({
        outboxId: e.id,
        destination: e.destination,
        sopInstanceUid: e.sopInstanceUid,
        state: e.state,
        attempts: e.attempts,
        lastError: e.lastError ?? null,
      }));
    if (!options.wait || queued.length === 0) {
      ctx.emitTable('routed', table(queued), 'Objects queued in the outbox');
      return;
    }
    const ids = queued.map((e) => e.id);
    for (;;) {
      const now = await services.outbox.get(ids);
      const delivered = now.filter((e) => e.state === 'delivered').length;
      const dead = now.filter((e) => e.state === 'dead');
      ctx.progress((delivered + dead.length) / ids.length, `${delivered} of ${ids.length} delivered`);
      if (delivered + dead.length === ids.length) {
        ctx.emitTable('routed', table(now), 'Objects routed through the outbox');
        if (dead.length > 0) {
          // A failed step keeps its log, not its outputs: the dead letters are named here.
          ctx.log.error(`${dead.length} object(s) went to the dead letters`, { dead: table(dead) });
          throw dfError(
            'DF_ERR_DELIVERY_FAILED',
            `${dead.length} of ${ids.length} object(s) went to the dead letters (first: ${dead[0].destination}: ${dead[0].lastError ?? 'no error recorded'})`,
          );
        }
        ctx.log.info(`delivered ${delivered} object(s)`);
        return;
      }
      await sleep(WAIT_POLL_MS, undefined, { signal: ctx.signal }).catch(() => {
        throw new Error('stopped while waiting for delivery; the objects stay queued');
      });
    }
  },
});
