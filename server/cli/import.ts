import path from 'node:path';
import cliProgress from 'cli-progress';
import type { ResolvedConfig } from '../../core/config/load.ts';
import { dfError } from '../../core/errors.ts';
import { collectFiles, importFiles, type ImportSummary } from '../import/importer.ts';
import { openStandaloneReceiver } from './standalone-receiver.ts';

/**
 * `dicomflow import PATH --db NAME --user NAME`: imports a folder or disc into the data
 * directory, whether or not the server runs. The arrivals are written here; the server's engine
 * (now, or at its next start) runs the pipelines on them, as for network arrivals.
 */
export async function importCommand(
  config: ResolvedConfig,
  source: string,
  database: string | undefined,
  user: string,
): Promise<ImportSummary> {
  const db = database ?? config.defaultDatabase;
  if (!config.databases.some((d) => d.name === db)) {
    throw dfError('DF_ERR_DATABASE_UNKNOWN', `no database "${db}" (configured: ${config.databases.map((d) => d.name).join(', ')})`);
  }
  const { receiver, index, close } = await openStandaloneReceiver(config);
  try {
    const { files, viaDicomdir } = collectFiles(path.resolve(source));
    console.error(
      `${files.length} file(s) to import from ${source}${viaDicomdir ? ' (listed by its DICOMDIR)' : ''} into ${db} as ${user}`,
    );
    const bar = process.stderr.isTTY
      ? new cliProgress.SingleBar(
          { format: 'importing [{bar}] {percentage}% {value}/{total} {eta_formatted} left', stream: process.stderr },
          cliProgress.Presets.shades_classic,
        )
      : undefined;
    bar?.start(files.length, 0);
    let lastLine = 0;
    const summary = await importFiles(files, {
      receiver,
      index,
      provenance: { source: 'import', database: db, createdBy: user, userName: user },
      onProgress: (done, total) => {
        bar?.update(done);
        // Without a terminal, a line every 10 % keeps logs readable.
        if (!bar && total > 0 && Math.floor((done * 10) / total) > lastLine) {
          lastLine = Math.floor((done * 10) / total);
          console.error(`imported ${done}/${total}`);
        }
      },
    });
    bar?.stop();
    return summary;
  } finally {
    await close();
  }
}

export function printSummary(summary: ImportSummary): void {
  console.log(
    `files: ${summary.files}  imported: ${summary.imported}  duplicates: ${summary.duplicates}  refused: ${summary.refused.length}`,
  );
  for (const r of summary.refused) console.log(`  refused ${r.file}: ${r.reason}`);
}
