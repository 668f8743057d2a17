import type { FrameTiming } from '../../../core/dicom/volume.ts';

/**
 * Which frames make the reference a dynamic series is registered to, and how they are combined.
 *
 * - 'mean': the duration-weighted mean of the frames whose midpoint lies in [startSec, endSec];
 * - 'frame': one frame (1-based);
 * - 'sum-late': the sum of the last `lateFrames` frames, each times its duration (counts-like).
 *
 * Mean and sum differ only by a factor, to which both costs are blind; they are offered so the
 * reference matches what a site calls it. Late frames are the usual choice: the most counts and
 * the tracer's final distribution.
 */
export type ReferenceSpec =
  | { kind: 'mean'; windowSec: [number, number] }
  | { kind: 'frame'; frame: number }
  | { kind: 'sum-late'; lateFrames: number };

export interface ReferenceChoice {
  /** 0-based frame indexes combined. */
  frames: number[];
  /** Weight of each (same order). */
  weights: number[];
  description: string;
}

export function chooseReferenceFrames(
  spec: ReferenceSpec,
  timing: readonly FrameTiming[],
  frameCount: number,
): ReferenceChoice | { problem: string } {
  const duration = (f: number): number => timing[f]?.durationMs ?? 1;
  switch (spec.kind) {
    case 'frame': {
      if (spec.frame < 1 || spec.frame > frameCount)
        return { problem: `reference frame ${spec.frame} does not exist (the series has ${frameCount} frame(s))` };
      return { frames: [spec.frame - 1], weights: [1], description: `frame ${spec.frame}` };
    }
    case 'sum-late': {
      const count = Math.min(spec.lateFrames, frameCount);
      const frames = Array.from({ length: count }, (_, i) => frameCount - count + i);
      return {
        frames,
        weights: frames.map((f) => duration(f) / 1000),
        description: `sum of the last ${count} frame(s) (${frames.map((f) => f + 1).join(', ')})`,
      };
    }
    case 'mean': {
      const [startSec, endSec] = spec.windowSec;
      if (timing.length !== frameCount) return { problem: 'a time window needs frame timing, and the series has none' };
      const frames: number[] = [];
      for (let f = 0; f < frameCount; f++) {
        const midSec = (timing[f].startMs + timing[f].durationMs / 2) / 1000;
        if (midSec >= startSec && midSec <= endSec) frames.push(f);
      }
      if (frames.length === 0) return { problem: `no frame has its midpoint between ${startSec} s and ${endSec} s` };
      const total = frames.reduce((sum, f) => sum + duration(f), 0);
      return {
        frames,
        weights: frames.map((f) => duration(f) / total),
        description: `mean of frames ${frames.map((f) => f + 1).join(', ')} (midpoints in ${startSec}–${endSec} s)`,
      };
    }
  }
}

/** Σ weight · frame. */
export function combineFrames(frames: readonly Float32Array[], weights: readonly number[]): Float32Array {
  const out = new Float32Array(frames[0].length);
  frames.forEach((frame, f) => {
    const w = weights[f];
    for (let n = 0; n < out.length; n++) out[n] += w * frame[n];
  });
  return out;
}
