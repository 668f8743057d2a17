/**
 * V8 flags the server runs with (measured on a 2 GB series in and out, bench/README.md "Peak RSS
 * of a 2 GB transfer"):
 *
 * - `--max-semi-space-size=4`: a young generation capped at 4 MB per semi-space is collected
 *   more often, which keeps the churn of socket chunks (64 KB each, dead once copied) from
 *   growing the heap: receiving a 0.8 GB series peaked at 167 MB RSS with it and 251 MB without,
 *   at the same speed.
 * - `--optimize-for-size`: V8 grows the old generation less between major collections. What a
 *   received or sent object allocates (a few hundred KB of short-lived JS objects) partly
 *   outlives two scavenges on a busy machine and is promoted; without this flag that garbage
 *   reached 80–170 MB of heap before V8 collected it, and a 2.1 GB series in (C-STORE) and out
 *   (C-GET, C-MOVE, WADO-RS) peaked at 209–325 MB RSS; with it the heap stayed under 60 MB and
 *   the peaks at 182–205 MB, at the same speed, in runs side by side on the same machine.
 *
 * Also in package.json's start script, server/cli.ts's shebang (which cannot import this) and
 * docs/dicomflow.service; node-flags.test.ts checks they agree.
 */
export const SERVER_NODE_FLAGS = ['--max-semi-space-size=4', '--optimize-for-size'];
