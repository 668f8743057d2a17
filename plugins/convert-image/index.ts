import path from 'node:path';
import { exportImages, safeFileStem, type ExportedImage } from '../../core/dicom/image-export.ts';
import { RenderError, windowOptionSchema, type WindowChoice } from '../../core/dicom/render.ts';
import { definePlugin } from '../../core/plugin.ts';

/** One row of the images table: an image file and the object and frame it shows. */
export type ImageRow = {
  file: string;
  sopInstanceUid: string;
  seriesInstanceUid: string | null;
  studyInstanceUid: string | null;
  seriesNumber: string | null;
  seriesDescription: string | null;
  modality: string | null;
  frame: number;
  numberOfFrames: number;
  width: number;
  height: number;
  bitDepth: number;
  windowCenter: number | null;
  windowWidth: number | null;
  windowSource: string | null;
};

/**
 * Renders each instance's frames through the DICOM display pipeline (modality LUT, VOI, MONOCHROME1,
 * palette colour, RGB/YBR; see core/dicom/render.ts) and writes them as JPEG or PNG files, named
 * after the SOP Instance UID (or its hash when it is not a well-formed UID).
 */
export default definePlugin({
  name: 'convert-image',
  version: '1.0.0',
  description:
    'Render each image (every frame, or the middle one) to JPEG or PNG with its window, into the job’s output directory or a folder.',
  runsIn: 'worker',
  consumes: ['instances'],
  produces: ['files', 'tables'],
  defaultTimeoutSeconds: 600,
  options: {
    type: 'object',
    additionalProperties: false,
    properties: {
      format: { enum: ['jpeg', 'png'], default: 'jpeg', description: 'Image file format.' },
      quality: { type: 'integer', minimum: 1, maximum: 100, default: 90, description: 'JPEG quality.' },
      window: windowOptionSchema,
      frames: { enum: ['all', 'middle', 'first'], default: 'all', description: 'Which frames of a multi-frame object to write.' },
      pngBitDepth: {
        enum: [8, 16],
        default: 8,
        description: 'Bits per sample of monochrome PNG files (16 keeps the windowed values finer than 256 levels).',
      },
      folder: {
        type: 'string',
        minLength: 1,
        description:
          'Write the images into this folder instead of the job’s output directory (relative: against the server’s working directory). Files of the same instance are overwritten.',
      },
      table: {
        type: 'string',
        pattern: '^[a-z0-9][a-z0-9-]*$',
        default: 'images',
        description: 'Name of the emitted table (one row per image file).',
      },
    },
  },
  async run(ctx, options) {
    const outDir = options.folder === undefined ? ctx.outputDir : path.resolve(options.folder);
    const rows: ImageRow[] = [];
    const done = new Set<string>();
    let skipped = 0;
    for (const [i, input] of ctx.inputs.entries()) {
      ctx.progress(i / ctx.inputs.length, input.sopInstanceUid);
      // An object sent twice is one set of images.
      if (done.has(input.sopInstanceUid)) continue;
      done.add(input.sopInstanceUid);
      let images: ExportedImage[];
      try {
        images = await exportImages({
          file: input.path,
          outDir,
          baseName: safeFileStem(input.sopInstanceUid, input.objectId),
          format: options.format,
          quality: options.quality,
          window: options.window as WindowChoice,
          frames: options.frames,
          pngBitDepth: options.pngBitDepth,
        });
      } catch (err) {
        // Objects without pixels (reports, presentation states) are not images: pass over them.
        if (err instanceof RenderError && err.notAnImage) {
          skipped++;
          ctx.log.info(`${input.sopInstanceUid}: not an image, skipped`);
          continue;
        }
        throw new Error(`cannot render ${input.sopInstanceUid} (${input.path}): ${(err as Error).message}`, { cause: err });
      }
      for (const image of images) {
        ctx.emitFile(
          image.path,
          `${options.format.toUpperCase()} of ${input.sopInstanceUid}${image.numberOfFrames > 1 ? ` frame ${image.frame}` : ''}`,
        );
        rows.push({
          file: image.path,
          sopInstanceUid: input.sopInstanceUid,
          seriesInstanceUid: input.seriesInstanceUid ?? null,
          studyInstanceUid: input.studyInstanceUid ?? null,
          seriesNumber: input.attributes.SeriesNumber ?? null,
          seriesDescription: input.attributes.SeriesDescription ?? null,
          modality: input.attributes.Modality ?? null,
          frame: image.frame,
          numberOfFrames: image.numberOfFrames,
          width: image.width,
          height: image.height,
          bitDepth: image.bitDepth,
          windowCenter: image.window?.center ?? null,
          windowWidth: image.window?.width ?? null,
          windowSource: image.window?.source ?? null,
        });
      }
    }
    ctx.emitTable(options.table, rows, 'Images written, one row per file');
    ctx.log.info(`${rows.length} image(s) written to ${outDir}${skipped > 0 ? `; ${skipped} object(s) without pixels skipped` : ''}`, {
      outDir,
      images: rows.length,
      skipped,
    });
    ctx.progress(1);
  },
});
