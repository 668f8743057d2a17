import type { FrameTiming } from '../../core/dicom/volume.ts';

/** A frame's start, duration and mid-time in seconds, when the series has frame timing. */
export function frameTimesSec(timing: FrameTiming | undefined): { startSec?: number; durationSec?: number; midSec?: number } {
  if (timing === undefined) return {};
  return {
    startSec: timing.startMs / 1000,
    durationSec: timing.durationMs / 1000,
    midSec: (timing.startMs + timing.durationMs / 2) / 1000,
  };
}
