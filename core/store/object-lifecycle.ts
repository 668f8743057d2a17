/**
 * The end of an object's life: jobs release the objects they no longer need filed (a
 * duplicate kept out, a delete-source copy), and the bytes of released objects nothing needs
 * any more (no database, no unfinished job, no open group) are collected.
 */
export interface ObjectLifecycle {
  releaseObjects(objectIds: string[], jobId: string): Promise<void>;
  /** Whether any released object still awaits collection. */
  hasReleasedObjects(): Promise<boolean>;
  /** Released objects no database holds and no unfinished job or open group needs. */
  collectableObjects(): Promise<{ id: string; path: string }[]>;
  markObjectDeleted(objectId: string): Promise<void>;
}
