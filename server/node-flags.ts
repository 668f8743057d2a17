/**
 * V8 flags the server runs with. A young generation capped at 4 MB per semi-space is collected
 * more often, which keeps the churn of socket chunks (64 KB each, dead once written) from
 * growing the heap: receiving a 0.8 GB series peaked at 167 MB RSS with it and 251 MB without,
 * at the same speed. Also in package.json's start script and server/cli.ts's shebang, which
 * cannot import this.
 */
export const SERVER_NODE_FLAGS = ['--max-semi-space-size=4'];
