import { newId } from '../../ids.ts';
import type { NewJob } from '../job-queue.ts';
import type { DueGroup, GroupJoin, TriggerGroups } from '../trigger-groups.ts';
import { dialectOf, type Row, type SqlDb, type SqlTransaction } from './sql-db.ts';
import type { JobInserts } from './job-sql.ts';

const DUE = "SELECT id, pipeline, level, uid FROM trigger_groups WHERE state = 'open' AND fire_at <= ? ORDER BY fire_at";
const NEXT_FIRE_AT = "SELECT min(fire_at) AS t FROM trigger_groups WHERE state = 'open'";
const MEMBERS = 'SELECT arrival_id FROM trigger_group_members WHERE group_id = ? ORDER BY arrival_id';
const MARK_FIRED = "UPDATE trigger_groups SET state = 'fired', job_id = ? WHERE id = ?";
const FORCE_DUE = "UPDATE trigger_groups SET fire_at = ? WHERE state = 'open' AND level = ? AND uid = ?";
const INSERT_GROUP = `INSERT INTO trigger_groups (id, pipeline, level, uid, generation, state, late_arrivals, first_arrival_at, last_arrival_at, fire_at)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`;
// Not the members whose bytes were released and are filed in no database (a duplicate kept out
// by keep-first, a replaced or delete-source copy): they are deleted once the fired
// generation's job ends, and a job over them would fail on the missing file.
const CARRY_MEMBERS_OVER = `INSERT INTO trigger_group_members (group_id, arrival_id)
  SELECT ?, m.arrival_id FROM trigger_group_members m JOIN arrivals a ON a.id = m.arrival_id
  WHERE m.group_id = ?
    AND NOT (EXISTS (SELECT 1 FROM object_releases r WHERE r.object_id = a.object_id)
             AND NOT EXISTS (SELECT 1 FROM instances i WHERE i.object_id = a.object_id))
  ON CONFLICT DO NOTHING`;
const INSERT_MEMBER = 'INSERT INTO trigger_group_members (group_id, arrival_id) VALUES (?, ?) ON CONFLICT DO NOTHING';

/** The statements whose text depends on the dialect, made once per store. */
function groupStatements(db: SqlDb) {
  const d = dialectOf(db.dialect);
  return {
    // Locked: a node firing this group meanwhile waits, or has fired it and we open the next.
    latest: `SELECT * FROM trigger_groups WHERE pipeline = ? AND level = ? AND uid = ? ORDER BY generation DESC LIMIT 1 ${d.forUpdate}`,
    extend: `UPDATE trigger_groups SET last_arrival_at = ?, fire_at = ${d.greatest('fire_at', '?')} WHERE id = ?`,
    // Exactly once for the cluster: the group is locked, and a node that waited finds it fired.
    openGroup: `SELECT * FROM trigger_groups WHERE id = ? AND state = 'open' ${d.forUpdate}`,
  };
}

/**
 * Stable-trigger groups in the index's database. On PostgreSQL a group is locked while it
 * takes an arrival or fires, so several nodes fire each generation exactly once.
 */
export class SqlTriggerGroups implements TriggerGroups {
  private readonly db: SqlDb;
  private readonly inserts: JobInserts;
  private readonly s: ReturnType<typeof groupStatements>;

  constructor(db: SqlDb, inserts: JobInserts) {
    this.db = db;
    this.inserts = inserts;
    this.s = groupStatements(db);
  }

  dueGroups(now: string): Promise<DueGroup[]> {
    return this.db.all<DueGroup & Row>(DUE, now);
  }

  async nextGroupFireAt(): Promise<string | undefined> {
    const r = await this.db.get<{ t: string | null }>(NEXT_FIRE_AT);
    return r?.t ?? undefined;
  }

  fireGroup(groupId: string, job: Omit<NewJob, 'inputs' | 'triggerOn' | 'triggerUid'>): Promise<string | undefined> {
    return this.inserts.transaction(this.db, async (tx, insert) => {
      const group = await tx.get(this.s.openGroup, groupId);
      if (!group) return undefined;
      const inputs = (await tx.all<{ arrival_id: string }>(MEMBERS, groupId)).map((r) => r.arrival_id);
      const jobId = await insert({ ...job, inputs, triggerOn: group.level, triggerUid: group.uid });
      await tx.run(MARK_FIRED, jobId, groupId);
      tx.notify('jobs');
      return jobId;
    });
  }

  forceComplete(level: 'series' | 'study', uid: string): Promise<number> {
    return this.db.transaction(async (tx) => {
      const n = (await tx.run(FORCE_DUE, new Date(0).toISOString(), level, uid)).changes;
      if (n > 0) tx.notify('jobs');
      return n;
    });
  }

  /**
   * The newest generation of a group takes the arrival while open (its timer restarts from this
   * arrival). Once fired, a late arrival opens the next generation, per the pipeline's policy:
   * 'whole' carries the earlier members over, 'late-only' starts empty, 'ignore' records the
   * arrival in a group that never fires.
   */
  async join(tx: SqlTransaction, arrivalId: string, receivedAt: string, join: GroupJoin): Promise<void> {
    const latest = await tx.get(this.s.latest, join.pipeline, join.level, join.uid);
    let groupId: string;
    if (latest && latest.state === 'open') {
      groupId = latest.id;
      await tx.run(this.s.extend, receivedAt, join.fireAt, groupId);
    } else {
      groupId = newId();
      const state = latest && join.lateArrivals === 'ignore' ? 'ignored' : 'open';
      await tx.run(
        INSERT_GROUP,
        groupId,
        join.pipeline,
        join.level,
        join.uid,
        (latest?.generation ?? 0) + 1,
        state,
        join.lateArrivals,
        receivedAt,
        receivedAt,
        join.fireAt,
      );
      if (latest && join.lateArrivals === 'whole') await tx.run(CARRY_MEMBERS_OVER, groupId, latest.id);
    }
    await tx.run(INSERT_MEMBER, groupId, arrivalId);
  }
}
