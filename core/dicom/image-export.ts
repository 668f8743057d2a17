import { createHash, randomUUID } from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
// sharp (libvips) must also be loaded by the main thread, or glibc unloads libvips when the
// first worker thread that used it exits and the next one crashes (sharp issue #2263). The
// plugins that run this in the pool import this module on the main thread when they register.
import sharp from 'sharp';
import { readDisplayImage, renderFrame, selectFrames, type AppliedWindow, type RenderedFrame, type WindowChoice } from './render.ts';

export type ImageFormat = 'jpeg' | 'png';

export interface ExportImagesTask {
  /** The Part 10 file. */
  file: string;
  outDir: string;
  /** File name without extension; a frame suffix is added for multi-frame objects. */
  baseName: string;
  format: ImageFormat;
  /** JPEG quality, 1–100. */
  quality: number;
  window: WindowChoice;
  frames: 'all' | 'middle' | 'first';
  /** PNG of monochrome images: 8 or 16 bits per sample. */
  pngBitDepth: 8 | 16;
}

export interface ExportedImage {
  path: string;
  /** 1-based frame number. */
  frame: number;
  numberOfFrames: number;
  width: number;
  height: number;
  channels: 1 | 3;
  bitDepth: 8 | 16;
  window?: AppliedWindow;
}

export const IMAGE_EXTENSIONS: Record<ImageFormat, string> = { jpeg: '.jpg', png: '.png' };

/** Encodes a rendered frame: grey stays one channel (sharp would make it sRGB), 16 bits only as PNG. */
export function encodeFrame(frame: RenderedFrame, format: ImageFormat, quality: number): Promise<Buffer> {
  // sharp takes the sample depth from the typed array's class: a Uint16Array is read as 16 bits.
  let image = sharp(frame.pixels, { raw: { width: frame.width, height: frame.height, channels: frame.channels } });
  if (frame.channels === 1) image = image.toColourspace(frame.bitDepth === 16 ? 'grey16' : 'b-w');
  if (format === 'png') return image.png({ compressionLevel: 6 }).toBuffer();
  if (frame.bitDepth === 16) throw new Error('16-bit images are written as PNG only');
  return image.jpeg({ quality }).toBuffer();
}

/**
 * Renders the chosen frames of one DICOM file and writes each as JPEG or PNG into outDir
 * (a temporary file renamed into place: a reader never sees half an image, and a second attempt
 * overwrites). Runs in a worker thread (or inline in one): decoding is synchronous.
 */
export async function exportImages(task: ExportImagesTask): Promise<ExportedImage[]> {
  const image = readDisplayImage(await fsp.readFile(task.file));
  const frames = selectFrames(image.numberOfFrames, task.frames);
  await fsp.mkdir(task.outDir, { recursive: true });
  const out: ExportedImage[] = [];
  for (const index of frames) {
    const monochrome = image.photometricInterpretation.startsWith('MONOCHROME');
    const bitDepth = task.format === 'png' && monochrome ? task.pngBitDepth : 8;
    const rendered = await renderFrame(image, index, { window: task.window, bitDepth });
    const suffix = image.numberOfFrames > 1 ? `-F${String(index + 1).padStart(4, '0')}` : '';
    const target = path.join(task.outDir, `${task.baseName}${suffix}${IMAGE_EXTENSIONS[task.format]}`);
    const tmp = path.join(task.outDir, `.${path.basename(target)}.${randomUUID()}.tmp`);
    await fsp.writeFile(tmp, await encodeFrame(rendered, task.format, task.quality));
    await fsp.rename(tmp, target);
    out.push({
      path: target,
      frame: index + 1,
      numberOfFrames: image.numberOfFrames,
      width: rendered.width,
      height: rendered.height,
      channels: rendered.channels,
      bitDepth: rendered.bitDepth,
      ...(rendered.window ? { window: rendered.window } : {}),
    });
  }
  return out;
}

/**
 * A file name from a UID that is safe on every file system: a well-formed UID (digits and dots,
 * PS3.5 9.1) is used as it is; anything else a sender put there becomes a hash of it.
 */
export function safeFileStem(uid: string | undefined, fallback: string): string {
  const value = (uid ?? '').trim();
  if (/^[0-9]+(\.[0-9]+)*$/.test(value) && value.length <= 64) return value;
  return createHash('sha256')
    .update(value || fallback)
    .digest('hex')
    .slice(0, 32);
}
