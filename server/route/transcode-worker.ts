import { readFile, writeFile } from 'node:fs/promises';
import { transcodeTo } from '../../core/dicom/transcode.ts';

/** Runs in the outbox's transcoding thread: decoding pixel data is CPU-bound and synchronous. */
export default async function transcodeFile(task: { source: string; target: string; transferSyntaxUid: string }): Promise<number> {
  const bytes = await transcodeTo(await readFile(task.source), task.transferSyntaxUid);
  await writeFile(task.target, bytes);
  return bytes.length;
}
