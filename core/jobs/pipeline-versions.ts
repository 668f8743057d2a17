import { dfError } from '../errors.ts';
import { formatProblem, type LoadedPipeline, type PipelineProblem } from '../pipeline/load.ts';
import type { JobQueue, JobRecord } from '../store/job-queue.ts';

// Earlier versions stay resolved for the jobs that run them (retries, reruns of the original).
const VERSIONS_KEPT_LOADED = 32;

export type RerunVersion = 'original' | 'current';

/** The pipelines loaded now, as jobs need them (the trigger's PipelineSet is one). */
export interface LoadedPipelines {
  all(): LoadedPipeline[];
  get(name: string): LoadedPipeline | undefined;
  /** A kept version resolved against the plugins loaded now (undefined with problems: it no longer loads). */
  loadVersion(version: { hash: string; pipeline: string; definition: string }): { pipeline?: LoadedPipeline; problems: PipelineProblem[] };
}

/**
 * The pipeline version each job runs: the definition it was queued with, kept in the job store
 * by content hash, so a retry, a restart, a takeover by another node or a rerun never picks up
 * an edit made meanwhile.
 */
export class PipelineVersions {
  private readonly pipelines: LoadedPipelines;
  private readonly jobs: JobQueue;
  /** Earlier versions loaded from the job store, by hash (oldest first). */
  private readonly loaded = new Map<string, LoadedPipeline>();

  constructor(pipelines: LoadedPipelines, jobs: JobQueue) {
    this.pipelines = pipelines;
    this.jobs = jobs;
  }

  /**
   * The version a job was queued with: the one loaded now when it is the same, else the kept
   * definition, resolved against the plugins loaded now. Undefined: a job without a version
   * whose pipeline is not loaded. Throws DF_ERR_PIPELINE_VERSION_UNKNOWN for a version that was
   * not kept (queued before versions were kept) and DF_ERR_PIPELINE_INVALID for one that no
   * longer loads (a plugin it uses is gone).
   */
  async of(job: Pick<JobRecord, 'id' | 'pipeline' | 'pipelineHash'>): Promise<LoadedPipeline | undefined> {
    const current = this.pipelines.get(job.pipeline);
    const hash = job.pipelineHash;
    if (hash === undefined || current?.hash === hash) return current;
    const loaded = this.loaded.get(hash);
    if (loaded) return loaded;
    const stored = await this.jobs.pipelineVersion(hash);
    if (!stored) {
      throw dfError(
        'DF_ERR_PIPELINE_VERSION_UNKNOWN',
        `job ${job.id} ran version ${hash} of pipeline "${job.pipeline}", which was not kept (it was queued before dicomflow kept pipeline versions)`,
      );
    }
    const { pipeline, problems } = this.pipelines.loadVersion(stored);
    if (!pipeline)
      throw dfError(
        'DF_ERR_PIPELINE_INVALID',
        `version ${hash} of pipeline "${job.pipeline}" no longer loads: ${problems.map(formatProblem).join('; ')}`,
      );
    this.loaded.set(hash, pipeline);
    if (this.loaded.size > VERSIONS_KEPT_LOADED) this.loaded.delete(this.loaded.keys().next().value!);
    return pipeline;
  }

  /** What a rerun of `original` runs: its own version, or the pipeline as loaded now. */
  async forRerun(original: JobRecord, version: RerunVersion): Promise<LoadedPipeline> {
    const p = version === 'current' ? this.pipelines.get(original.pipeline) : await this.of(original);
    if (!p) throw dfError('DF_ERR_PIPELINE_UNKNOWN', `no loaded pipeline "${original.pipeline}"`);
    return p;
  }
}
