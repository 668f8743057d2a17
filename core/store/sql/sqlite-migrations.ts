/**
 * Versioned schema of the embedded index. Each migration runs once, in order, inside a
 * transaction; a released migration is never edited, only followed by a new one.
 * Ids are text (UUIDv7) so that rows made by several nodes never collide.
 */
import type { Migration } from './migrate.ts';

export const sqliteMigrations: readonly Migration[] = [
  {
    version: 1,
    name: 'objects, arrivals and the four-level index',
    sql: `
      CREATE TABLE objects (
        id TEXT PRIMARY KEY,
        path TEXT NOT NULL,
        size INTEGER NOT NULL,
        transfer_syntax_uid TEXT NOT NULL,
        sop_class_uid TEXT NOT NULL,
        sop_instance_uid TEXT NOT NULL,
        created_at TEXT NOT NULL
      );
      CREATE TABLE arrivals (
        id TEXT PRIMARY KEY,
        object_id TEXT NOT NULL REFERENCES objects(id),
        received_at TEXT NOT NULL,
        source TEXT NOT NULL,
        calling_ae_title TEXT,
        called_ae_title TEXT,
        peer_address TEXT,
        user_name TEXT,
        association_id TEXT,
        database_name TEXT,
        outcome TEXT NOT NULL,
        sop_class_uid TEXT NOT NULL,
        sop_instance_uid TEXT NOT NULL,
        series_instance_uid TEXT,
        study_instance_uid TEXT,
        patient_id TEXT,
        modality TEXT,
        attributes TEXT NOT NULL
      );
      CREATE INDEX arrivals_series ON arrivals(series_instance_uid);
      CREATE INDEX arrivals_study ON arrivals(study_instance_uid);
      CREATE INDEX arrivals_sop ON arrivals(sop_instance_uid);
      CREATE TABLE patients (
        id TEXT PRIMARY KEY,
        database_name TEXT NOT NULL,
        patient_key TEXT NOT NULL,
        patient_id TEXT,
        attributes TEXT NOT NULL,
        created_at TEXT NOT NULL,
        UNIQUE (database_name, patient_key)
      );
      CREATE TABLE studies (
        id TEXT PRIMARY KEY,
        database_name TEXT NOT NULL,
        patient_row_id TEXT NOT NULL REFERENCES patients(id),
        study_instance_uid TEXT NOT NULL,
        study_date TEXT,
        attributes TEXT NOT NULL,
        created_at TEXT NOT NULL,
        UNIQUE (database_name, study_instance_uid)
      );
      CREATE INDEX studies_patient ON studies(patient_row_id);
      CREATE TABLE series (
        id TEXT PRIMARY KEY,
        database_name TEXT NOT NULL,
        study_row_id TEXT NOT NULL REFERENCES studies(id),
        series_instance_uid TEXT NOT NULL,
        modality TEXT,
        attributes TEXT NOT NULL,
        created_at TEXT NOT NULL,
        UNIQUE (database_name, series_instance_uid)
      );
      CREATE INDEX series_study ON series(study_row_id);
      CREATE TABLE instances (
        id TEXT PRIMARY KEY,
        database_name TEXT NOT NULL,
        series_row_id TEXT NOT NULL REFERENCES series(id),
        sop_instance_uid TEXT NOT NULL,
        sop_class_uid TEXT NOT NULL,
        object_id TEXT NOT NULL REFERENCES objects(id),
        attributes TEXT NOT NULL,
        created_by TEXT NOT NULL,
        created_at TEXT NOT NULL,
        source TEXT NOT NULL,
        arrival_id TEXT,
        UNIQUE (database_name, sop_instance_uid)
      );
      CREATE INDEX instances_series ON instances(series_row_id);
      CREATE INDEX instances_object ON instances(object_id);
      CREATE TABLE duplicates (
        id TEXT PRIMARY KEY,
        database_name TEXT NOT NULL,
        sop_instance_uid TEXT NOT NULL,
        arrival_id TEXT NOT NULL,
        kept_instance_id TEXT,
        action TEXT NOT NULL,
        received_at TEXT NOT NULL
      );
      CREATE INDEX duplicates_sop ON duplicates(sop_instance_uid);
    `,
  },
  {
    version: 2,
    name: 'pipeline engine: arrival processing, jobs, steps, stable-trigger groups, released objects',
    sql: `
      ALTER TABLE arrivals ADD COLUMN processed_at TEXT;
      CREATE INDEX arrivals_unprocessed ON arrivals(id) WHERE processed_at IS NULL;
      ALTER TABLE objects ADD COLUMN deleted_at TEXT;
      CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        pipeline TEXT NOT NULL,
        pipeline_hash TEXT,
        status TEXT NOT NULL,
        trigger_on TEXT NOT NULL,
        trigger_uid TEXT,
        contributors TEXT NOT NULL,
        inputs TEXT NOT NULL,
        priority INTEGER NOT NULL DEFAULT 0,
        attempts INTEGER NOT NULL DEFAULT 0,
        max_attempts INTEGER NOT NULL,
        backoff_seconds REAL NOT NULL DEFAULT 10,
        not_before TEXT,
        rerun_of TEXT,
        created_by TEXT,
        created_at TEXT NOT NULL,
        started_at TEXT,
        finished_at TEXT,
        progress REAL NOT NULL DEFAULT 0,
        progress_message TEXT,
        error_code TEXT,
        error TEXT,
        stop_reason TEXT,
        lease_owner TEXT,
        lease_expires_at TEXT
      );
      CREATE INDEX jobs_queue ON jobs(status, priority DESC, id);
      CREATE INDEX jobs_pipeline ON jobs(pipeline, id);
      CREATE TABLE job_steps (
        job_id TEXT NOT NULL REFERENCES jobs(id),
        attempt INTEGER NOT NULL,
        step_index INTEGER NOT NULL,
        step_id TEXT NOT NULL,
        plugin TEXT NOT NULL,
        status TEXT NOT NULL,
        started_at TEXT,
        finished_at TEXT,
        duration_ms REAL,
        log TEXT NOT NULL DEFAULT '[]',
        outputs TEXT NOT NULL DEFAULT '[]',
        error TEXT,
        PRIMARY KEY (job_id, attempt, step_index)
      );
      CREATE TABLE trigger_groups (
        id TEXT PRIMARY KEY,
        pipeline TEXT NOT NULL,
        level TEXT NOT NULL,
        uid TEXT NOT NULL,
        generation INTEGER NOT NULL,
        state TEXT NOT NULL,
        late_arrivals TEXT NOT NULL,
        first_arrival_at TEXT NOT NULL,
        last_arrival_at TEXT NOT NULL,
        fire_at TEXT NOT NULL,
        job_id TEXT,
        UNIQUE (pipeline, level, uid, generation)
      );
      CREATE INDEX trigger_groups_due ON trigger_groups(state, fire_at);
      CREATE TABLE trigger_group_members (
        group_id TEXT NOT NULL REFERENCES trigger_groups(id),
        arrival_id TEXT NOT NULL REFERENCES arrivals(id),
        PRIMARY KEY (group_id, arrival_id)
      );
      CREATE TABLE object_releases (
        object_id TEXT PRIMARY KEY REFERENCES objects(id),
        released_at TEXT NOT NULL,
        released_by_job TEXT
      );
    `,
  },
  {
    version: 3,
    name: 'the creator an arrival records (calling AE title, user, watch folder)',
    sql: `ALTER TABLE arrivals ADD COLUMN created_by TEXT;`,
  },
  {
    version: 4,
    name: 'audit log of what people did (moves, copies, reruns)',
    sql: `
      CREATE TABLE audit_log (
        id TEXT PRIMARY KEY,
        at TEXT NOT NULL,
        user_name TEXT NOT NULL,
        action TEXT NOT NULL,
        details TEXT NOT NULL
      );
      CREATE INDEX audit_log_user ON audit_log(user_name, id);
    `,
  },
  {
    version: 5,
    name: 'routing outbox: objects waiting for, delivered to or given up on by remote nodes',
    sql: `
      CREATE TABLE outbox (
        id TEXT PRIMARY KEY,
        destination TEXT NOT NULL,
        path TEXT NOT NULL,
        sop_class_uid TEXT NOT NULL,
        sop_instance_uid TEXT NOT NULL,
        transfer_syntax_uid TEXT NOT NULL,
        size INTEGER NOT NULL,
        source_key TEXT NOT NULL,
        job_id TEXT,
        step_id TEXT,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        next_attempt_at TEXT NOT NULL,
        last_attempt_at TEXT,
        delivered_at TEXT,
        status INTEGER,
        sent_transfer_syntax_uid TEXT,
        last_error_code TEXT,
        last_error TEXT,
        lease_owner TEXT,
        lease_expires_at TEXT,
        UNIQUE (destination, source_key, job_id, step_id)
      );
      CREATE INDEX outbox_due ON outbox(destination, state, next_attempt_at);
      CREATE INDEX outbox_job ON outbox(job_id);
    `,
  },
  {
    version: 6,
    name: 'API tokens, kept as SHA-256 hashes',
    sql: `
      CREATE TABLE api_tokens (
        id TEXT PRIMARY KEY,
        user_name TEXT NOT NULL,
        token_hash TEXT NOT NULL UNIQUE,
        description TEXT,
        created_at TEXT NOT NULL,
        last_used_at TEXT,
        revoked_at TEXT
      );
      CREATE INDEX api_tokens_user ON api_tokens(user_name);
    `,
  },
  {
    version: 7,
    name: 'jobs: attempts cut short by a stop or crash kept apart from the attempts a job used; arrivals by object',
    sql: `
      ALTER TABLE jobs ADD COLUMN interruptions INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE jobs ADD COLUMN isolated INTEGER NOT NULL DEFAULT 0;
      -- Released-object collection looks arrivals up by object; without this SQLite built an
      -- automatic index on every run (a fifth of the main thread's time under load).
      CREATE INDEX arrivals_object ON arrivals(object_id);
    `,
  },
  {
    version: 8,
    name: 'nodes: the servers on this index, their heartbeat and load',
    sql: `
      CREATE TABLE nodes (
        name TEXT PRIMARY KEY,
        started_at TEXT NOT NULL,
        heartbeat_at TEXT NOT NULL,
        stopped_at TEXT,
        status TEXT NOT NULL
      );
    `,
  },
  {
    version: 9,
    name: 'the node that received an object, and the node that claimed the latest attempt of a job',
    sql: `
      ALTER TABLE objects ADD COLUMN node TEXT;
      ALTER TABLE jobs ADD COLUMN node TEXT;
    `,
  },
  {
    version: 10,
    name: 'pseudonyms of the deidentify step (re-identification table) and the installation secret its UIDs derive from',
    sql: `
      CREATE TABLE pseudonyms (
        kind TEXT NOT NULL,
        original TEXT NOT NULL,
        pseudonym TEXT NOT NULL,
        date_offset_days INTEGER,
        original_name TEXT,
        created_at TEXT NOT NULL,
        created_by TEXT,
        PRIMARY KEY (kind, original)
      );
      CREATE INDEX pseudonyms_pseudonym ON pseudonyms(kind, pseudonym);
      CREATE TABLE installation_secrets (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        created_at TEXT NOT NULL
      );
    `,
  },
  {
    version: 11,
    name: 'pipeline versions: the definition each job was queued with, kept once per content hash',
    sql: `
      CREATE TABLE pipeline_versions (
        hash TEXT PRIMARY KEY,
        pipeline TEXT NOT NULL,
        definition TEXT NOT NULL,
        created_at TEXT NOT NULL
      );
    `,
  },
  {
    version: 12,
    name: 'filing on arrival: the pipeline whose filing committed with the arrival (no job for it)',
    sql: `
      ALTER TABLE arrivals ADD COLUMN filed_by TEXT;
    `,
  },
  {
    version: 13,
    name: 'match keys: the C-FIND keys users query most, in indexed columns (existing rows are keyed by the index at start)',
    sql: `
      ALTER TABLE patients ADD COLUMN k_patient_id TEXT;
      ALTER TABLE patients ADD COLUMN k_patient_name TEXT;
      ALTER TABLE patients ADD COLUMN keys_pending INTEGER;
      ALTER TABLE studies ADD COLUMN k_study_date TEXT;
      ALTER TABLE studies ADD COLUMN k_accession_number TEXT;
      ALTER TABLE studies ADD COLUMN k_study_id TEXT;
      ALTER TABLE studies ADD COLUMN keys_pending INTEGER;
      ALTER TABLE series ADD COLUMN k_modality TEXT;
      ALTER TABLE series ADD COLUMN k_series_number TEXT;
      ALTER TABLE series ADD COLUMN keys_pending INTEGER;
      UPDATE patients SET k_patient_id = char(1), k_patient_name = char(1), keys_pending = 1;
      UPDATE studies SET k_study_date = char(1), k_accession_number = char(1), k_study_id = char(1), keys_pending = 1;
      UPDATE series SET k_modality = char(1), k_series_number = char(1), keys_pending = 1;
      -- Without the database name: a listing without UIDs does not use its index (see SqlIndex), so
      -- SQLite, which keeps no statistics here, reads a key's rows rather than the whole database's.
      CREATE INDEX patients_k_patient_id ON patients(k_patient_id);
      CREATE INDEX patients_k_patient_name ON patients(k_patient_name);
      CREATE INDEX studies_k_study_date ON studies(k_study_date);
      CREATE INDEX studies_k_accession_number ON studies(k_accession_number);
      CREATE INDEX studies_k_study_id ON studies(k_study_id);
      CREATE INDEX series_k_modality ON series(k_modality);
      CREATE INDEX patients_keys_pending ON patients(keys_pending) WHERE keys_pending IS NOT NULL;
      CREATE INDEX studies_keys_pending ON studies(keys_pending) WHERE keys_pending IS NOT NULL;
      CREATE INDEX series_keys_pending ON series(keys_pending) WHERE keys_pending IS NOT NULL;
    `,
  },
];
