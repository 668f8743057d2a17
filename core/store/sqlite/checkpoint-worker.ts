import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';

const { file, intervalMs } = workerData as { file: string; intervalMs: number };
const db = new Database(file);
db.pragma('busy_timeout = 5000');
// Pages in the WAL past which a checkpoint runs (about 4 MiB with 4 KiB pages).
const THRESHOLD_PAGES = 1000;

const timer = setInterval(() => {
  try {
    const [r] = db.pragma('wal_checkpoint(PASSIVE)') as { busy: number; log: number; checkpointed: number }[];
    // Fully checkpointed and nothing new: truncate the WAL so it does not stay large.
    if (r && r.log > THRESHOLD_PAGES && r.checkpointed === r.log) db.pragma('wal_checkpoint(TRUNCATE)');
  } catch {
    // A busy database: the next round tries again.
  }
}, intervalMs);

parentPort?.on('message', (m) => {
  if (m === 'stop') {
    clearInterval(timer);
    try {
      db.pragma('wal_checkpoint(PASSIVE)');
    } finally {
      db.close();
      process.exit(0);
    }
  }
});
