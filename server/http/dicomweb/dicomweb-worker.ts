/**
 * The CPU-bound parts of WADO-RS, run on DICOMweb's worker thread so that the event loop keeps
 * answering the network: reading a header into DICOM JSON, cutting or decoding frames, rendering
 * through the display pipeline of convert-image, transcoding.
 */
import { readFile } from 'node:fs/promises';
import dcmjs from 'dcmjs';
import { encodeFrame, type ImageFormat } from '../../../core/dicom/image-export.ts';
import { decodeFrames, encapsulatedFrames, imagePixelModule, parsePart10, transferSyntaxOf } from '../../../core/dicom/pixel-data.ts';
import { readDisplayImage, renderFrame, type WindowChoice } from '../../../core/dicom/render.ts';
import { transcodeTo } from '../../../core/dicom/transcode.ts';
import { transferSyntaxByUid } from '../../../core/dicom/transfer-syntaxes.ts';
import { dfError } from '../../../core/errors.ts';
import { frameMediaType } from './media-types.ts';
import { datasetFromDcmjs, type DcmjsDict, type DicomJsonDataset } from './dicom-json.ts';

const { DicomMessage } = dcmjs.data;

const asArrayBuffer = (bytes: Buffer): ArrayBuffer =>
  bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength
    ? (bytes.buffer as ArrayBuffer)
    : (Uint8Array.prototype.slice.call(bytes).buffer as ArrayBuffer);

/** Binary values up to this size are inlined in metadata; larger ones get a BulkDataURI. */
const INLINE_MAX_BYTES = 1024;

/** WADO-RS metadata of each file: its dataset in DICOM JSON, bulk data as URIs under `instanceUrl/bulkdata/<tag>`. */
export async function metadata(task: { files: { path: string; instanceUrl: string }[] }): Promise<DicomJsonDataset[]> {
  const out: DicomJsonDataset[] = [];
  for (const file of task.files) {
    const bytes = await readFile(file.path);
    // The header only: pixel data is referenced, never copied into the parse.
    const parsed = DicomMessage.readFile(asArrayBuffer(bytes), { ignoreErrors: true, untilTag: '7FE00010', includeUntilTagValue: false });
    const dict = parsed.dict as DcmjsDict;
    const pixel = parsePart10(bytes).elements.x7fe00010;
    if (pixel) dict['7FE00010'] = { vr: pixel.vr ?? 'OW', Value: [] };
    out.push(datasetFromDcmjs(dict, { inlineMaxBytes: INLINE_MAX_BYTES, uriOf: (tag) => `${file.instanceUrl}/bulkdata/${tag}` }));
  }
  return out;
}

export interface FramesResult {
  /** The transfer syntax of the frames' bytes (Explicit VR Little Endian once decoded). */
  transferSyntaxUid: string;
  mediaType: string;
  frames: Uint8Array[];
}

/**
 * Frames (1-based numbers) of one file: as stored (native slices, or each frame's compressed
 * codestream), or decoded to native little-endian bytes when `decode` is set.
 */
export async function frames(task: { path: string; numbers: number[]; decode: boolean }): Promise<FramesResult> {
  const bytes = await readFile(task.path);
  const dataSet = parsePart10(bytes);
  const ts = transferSyntaxOf(dataSet);
  const pixel = imagePixelModule(dataSet);
  for (const n of task.numbers) {
    if (n < 1 || n > pixel.numberOfFrames)
      throw dfError('DF_ERR_NOT_FOUND', `frame ${n} does not exist: the instance has ${pixel.numberOfFrames} frame(s)`);
  }
  const element = dataSet.elements.x7fe00010;
  if (!element) throw dfError('DF_ERR_NOT_FOUND', 'the instance has no Pixel Data');
  const encapsulated = transferSyntaxByUid(ts)?.encapsulated === true;
  if (task.decode || (!encapsulated && ts === '1.2.840.10008.1.2.2')) {
    const decoded = await decodeFrames(
      dataSet,
      ts,
      task.numbers.map((n) => n - 1),
    );
    return {
      transferSyntaxUid: '1.2.840.10008.1.2.1',
      mediaType: 'application/octet-stream',
      frames: decoded.frames.map((f) => new Uint8Array(f.buffer.slice(f.byteOffset, f.byteOffset + f.byteLength))),
    };
  }
  if (encapsulated) {
    const all = encapsulatedFrames(bytes.subarray(element.dataOffset, element.dataOffset + element.length), pixel.numberOfFrames, ts);
    return { transferSyntaxUid: ts, mediaType: frameMediaType(ts), frames: task.numbers.map((n) => all[n - 1].slice()) };
  }
  const frameBytes = Math.ceil((pixel.rows * pixel.columns * pixel.samplesPerPixel * pixel.bitsAllocated) / 8);
  return {
    transferSyntaxUid: ts,
    mediaType: 'application/octet-stream',
    frames: task.numbers.map((n) => {
      const start = element.dataOffset + (n - 1) * frameBytes;
      if (start + frameBytes > element.dataOffset + element.length)
        throw dfError('DF_ERR_PIXEL_DECODE', `Pixel Data is too short for frame ${n}`);
      return bytes.subarray(start, start + frameBytes).slice();
    }),
  };
}

/** The raw value of a top-level attribute other than Pixel Data (which is served as frames). */
export async function bulkValue(task: { path: string; tag: string }): Promise<Uint8Array> {
  const bytes = await readFile(task.path);
  const parsed = DicomMessage.readFile(asArrayBuffer(bytes), { ignoreErrors: true, untilTag: '7FE00010', includeUntilTagValue: false });
  const attribute = (parsed.dict as DcmjsDict)[task.tag];
  const buffers = (attribute?.Value ?? []).filter((v): v is ArrayBuffer => v instanceof ArrayBuffer);
  if (!attribute || buffers.length === 0) throw dfError('DF_ERR_NOT_FOUND', `the instance has no bulk data at ${task.tag}`);
  return new Uint8Array(Buffer.concat(buffers.map((b) => Buffer.from(b))));
}

export interface RenderTask {
  path: string;
  /** 1-based. */
  frame: number;
  format: ImageFormat;
  quality: number;
  window: WindowChoice;
  /** Fit inside this many pixels (thumbnails, `viewport`), keeping the aspect ratio. */
  viewport?: { width: number; height: number };
}

/** One frame through the display pipeline (core/dicom/render.ts), as JPEG or PNG. */
export async function rendered(task: RenderTask): Promise<Uint8Array> {
  const image = readDisplayImage(await readFile(task.path));
  if (task.frame < 1 || task.frame > image.numberOfFrames)
    throw dfError('DF_ERR_NOT_FOUND', `frame ${task.frame} does not exist: the instance has ${image.numberOfFrames} frame(s)`);
  const frame = await renderFrame(image, task.frame - 1, { window: task.window });
  let encoded = await encodeFrame(frame, task.format, task.quality);
  if (task.viewport && (frame.width > task.viewport.width || frame.height > task.viewport.height)) {
    const { default: sharp } = await import('sharp');
    const resized = sharp(encoded).resize(task.viewport.width, task.viewport.height, { fit: 'inside' });
    encoded = await (task.format === 'png' ? resized.png() : resized.jpeg({ quality: task.quality })).toBuffer();
  }
  return new Uint8Array(encoded.buffer, encoded.byteOffset, encoded.byteLength);
}

/** The whole object re-encoded in Explicit or Implicit VR Little Endian. */
export async function transcoded(task: { path: string; transferSyntaxUid: string }): Promise<Uint8Array> {
  const out = await transcodeTo(await readFile(task.path), task.transferSyntaxUid);
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

export type WorkerCall =
  | { name: 'metadata'; arg: Parameters<typeof metadata>[0] }
  | { name: 'frames'; arg: Parameters<typeof frames>[0] }
  | { name: 'bulkValue'; arg: Parameters<typeof bulkValue>[0] }
  | { name: 'rendered'; arg: RenderTask }
  | { name: 'transcoded'; arg: Parameters<typeof transcoded>[0] };

/** An error crosses the thread boundary as its code and message (a clone drops the class). */
export type WorkerReply = { ok: true; value: unknown } | { ok: false; code?: string; message: string };

const tasks = { metadata, frames, bulkValue, rendered, transcoded } as Record<WorkerCall['name'], (arg: unknown) => Promise<unknown>>;

/** Piscina calls the default export. */
export default async function run(call: WorkerCall): Promise<WorkerReply> {
  try {
    return { ok: true, value: await tasks[call.name](call.arg) };
  } catch (err) {
    const e = err as Error & { code?: string };
    return {
      ok: false,
      code: typeof e.code === 'string' && e.code.startsWith('DF_ERR_') ? e.code : undefined,
      message: e.message?.replace(/^DF_ERR_[A-Z_]+: /, '') ?? String(err),
    };
  }
}
