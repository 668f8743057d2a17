import type { Migration } from './migrate.ts';

/**
 * The PostgreSQL schema, versioned like SQLite's (sqlite-migrations.ts) but numbered on its
 * own: version 1 is the shape SQLite reached at its version 8. Text columns compare bytewise
 * (COLLATE "C"): ids are UUIDv7 and times ISO 8601, ordered as text, as on SQLite, whatever
 * the database's locale.
 */
export const postgresMigrations: readonly Migration[] = [
  {
    version: 1,
    name: 'objects, arrivals, the four-level index, jobs, stable-trigger groups, releases, audit log, outbox, API tokens, nodes',
    sql: `
      CREATE TABLE objects (
        id text COLLATE "C" PRIMARY KEY,
        path text NOT NULL,
        size bigint NOT NULL,
        transfer_syntax_uid text NOT NULL,
        sop_class_uid text NOT NULL,
        sop_instance_uid text NOT NULL,
        created_at text COLLATE "C" NOT NULL,
        deleted_at text COLLATE "C"
      );
      CREATE INDEX objects_created ON objects(created_at) WHERE deleted_at IS NULL;
      CREATE TABLE arrivals (
        id text COLLATE "C" PRIMARY KEY,
        object_id text COLLATE "C" NOT NULL REFERENCES objects(id),
        received_at text COLLATE "C" NOT NULL,
        source text NOT NULL,
        calling_ae_title text,
        called_ae_title text,
        peer_address text,
        user_name text,
        association_id text,
        database_name text COLLATE "C",
        outcome text NOT NULL,
        sop_class_uid text NOT NULL,
        sop_instance_uid text COLLATE "C" NOT NULL,
        series_instance_uid text COLLATE "C",
        study_instance_uid text COLLATE "C",
        patient_id text,
        modality text,
        attributes text NOT NULL,
        processed_at text COLLATE "C",
        created_by text
      );
      CREATE INDEX arrivals_series ON arrivals(series_instance_uid);
      CREATE INDEX arrivals_study ON arrivals(study_instance_uid);
      CREATE INDEX arrivals_sop ON arrivals(sop_instance_uid);
      CREATE INDEX arrivals_unprocessed ON arrivals(id) WHERE processed_at IS NULL;
      CREATE INDEX arrivals_object ON arrivals(object_id);
      CREATE TABLE patients (
        id text COLLATE "C" PRIMARY KEY,
        database_name text COLLATE "C" NOT NULL,
        patient_key text COLLATE "C" NOT NULL,
        patient_id text COLLATE "C",
        attributes text NOT NULL,
        created_at text COLLATE "C" NOT NULL,
        UNIQUE (database_name, patient_key)
      );
      CREATE TABLE studies (
        id text COLLATE "C" PRIMARY KEY,
        database_name text COLLATE "C" NOT NULL,
        patient_row_id text COLLATE "C" NOT NULL REFERENCES patients(id),
        study_instance_uid text COLLATE "C" NOT NULL,
        study_date text,
        attributes text NOT NULL,
        created_at text COLLATE "C" NOT NULL,
        UNIQUE (database_name, study_instance_uid)
      );
      CREATE INDEX studies_patient ON studies(patient_row_id);
      CREATE TABLE series (
        id text COLLATE "C" PRIMARY KEY,
        database_name text COLLATE "C" NOT NULL,
        study_row_id text COLLATE "C" NOT NULL REFERENCES studies(id),
        series_instance_uid text COLLATE "C" NOT NULL,
        modality text,
        attributes text NOT NULL,
        created_at text COLLATE "C" NOT NULL,
        UNIQUE (database_name, series_instance_uid)
      );
      CREATE INDEX series_study ON series(study_row_id);
      CREATE TABLE instances (
        id text COLLATE "C" PRIMARY KEY,
        database_name text COLLATE "C" NOT NULL,
        series_row_id text COLLATE "C" NOT NULL REFERENCES series(id),
        sop_instance_uid text COLLATE "C" NOT NULL,
        sop_class_uid text NOT NULL,
        object_id text COLLATE "C" NOT NULL REFERENCES objects(id),
        attributes text NOT NULL,
        created_by text NOT NULL,
        created_at text COLLATE "C" NOT NULL,
        source text NOT NULL,
        arrival_id text COLLATE "C",
        UNIQUE (database_name, sop_instance_uid)
      );
      CREATE INDEX instances_series ON instances(series_row_id);
      CREATE INDEX instances_object ON instances(object_id);
      CREATE TABLE duplicates (
        id text COLLATE "C" PRIMARY KEY,
        database_name text COLLATE "C" NOT NULL,
        sop_instance_uid text COLLATE "C" NOT NULL,
        arrival_id text COLLATE "C" NOT NULL,
        kept_instance_id text COLLATE "C",
        action text NOT NULL,
        received_at text COLLATE "C" NOT NULL
      );
      CREATE INDEX duplicates_sop ON duplicates(sop_instance_uid);
      CREATE TABLE jobs (
        id text COLLATE "C" PRIMARY KEY,
        pipeline text COLLATE "C" NOT NULL,
        pipeline_hash text,
        status text COLLATE "C" NOT NULL,
        trigger_on text NOT NULL,
        trigger_uid text,
        contributors text NOT NULL,
        inputs text NOT NULL,
        priority integer NOT NULL DEFAULT 0,
        attempts integer NOT NULL DEFAULT 0,
        max_attempts integer NOT NULL,
        backoff_seconds double precision NOT NULL DEFAULT 10,
        not_before text COLLATE "C",
        rerun_of text COLLATE "C",
        created_by text,
        created_at text COLLATE "C" NOT NULL,
        started_at text COLLATE "C",
        finished_at text COLLATE "C",
        progress double precision NOT NULL DEFAULT 0,
        progress_message text,
        error_code text,
        error text,
        stop_reason text,
        lease_owner text COLLATE "C",
        lease_expires_at text COLLATE "C",
        interruptions integer NOT NULL DEFAULT 0,
        isolated integer NOT NULL DEFAULT 0
      );
      CREATE INDEX jobs_queue ON jobs(status, priority DESC, id);
      CREATE INDEX jobs_pipeline ON jobs(pipeline, id);
      CREATE INDEX jobs_leases ON jobs(lease_expires_at) WHERE status = 'running';
      CREATE TABLE job_steps (
        job_id text COLLATE "C" NOT NULL REFERENCES jobs(id),
        attempt integer NOT NULL,
        step_index integer NOT NULL,
        step_id text NOT NULL,
        plugin text NOT NULL,
        status text NOT NULL,
        started_at text COLLATE "C",
        finished_at text COLLATE "C",
        duration_ms double precision,
        log text NOT NULL DEFAULT '[]',
        outputs text NOT NULL DEFAULT '[]',
        error text,
        PRIMARY KEY (job_id, attempt, step_index)
      );
      CREATE TABLE trigger_groups (
        id text COLLATE "C" PRIMARY KEY,
        pipeline text COLLATE "C" NOT NULL,
        level text COLLATE "C" NOT NULL,
        uid text COLLATE "C" NOT NULL,
        generation integer NOT NULL,
        state text COLLATE "C" NOT NULL,
        late_arrivals text NOT NULL,
        first_arrival_at text COLLATE "C" NOT NULL,
        last_arrival_at text COLLATE "C" NOT NULL,
        fire_at text COLLATE "C" NOT NULL,
        job_id text COLLATE "C",
        UNIQUE (pipeline, level, uid, generation)
      );
      CREATE INDEX trigger_groups_due ON trigger_groups(state, fire_at);
      CREATE TABLE trigger_group_members (
        group_id text COLLATE "C" NOT NULL REFERENCES trigger_groups(id),
        arrival_id text COLLATE "C" NOT NULL REFERENCES arrivals(id),
        PRIMARY KEY (group_id, arrival_id)
      );
      CREATE INDEX trigger_group_members_arrival ON trigger_group_members(arrival_id);
      CREATE TABLE object_releases (
        object_id text COLLATE "C" PRIMARY KEY REFERENCES objects(id),
        released_at text COLLATE "C" NOT NULL,
        released_by_job text COLLATE "C"
      );
      CREATE TABLE audit_log (
        id text COLLATE "C" PRIMARY KEY,
        at text COLLATE "C" NOT NULL,
        user_name text COLLATE "C" NOT NULL,
        action text NOT NULL,
        details text NOT NULL
      );
      CREATE INDEX audit_log_user ON audit_log(user_name, id);
      CREATE TABLE outbox (
        id text COLLATE "C" PRIMARY KEY,
        destination text COLLATE "C" NOT NULL,
        path text COLLATE "C" NOT NULL,
        sop_class_uid text NOT NULL,
        sop_instance_uid text NOT NULL,
        transfer_syntax_uid text NOT NULL,
        size bigint NOT NULL,
        source_key text COLLATE "C" NOT NULL,
        job_id text COLLATE "C",
        step_id text COLLATE "C",
        state text COLLATE "C" NOT NULL,
        attempts integer NOT NULL DEFAULT 0,
        created_at text COLLATE "C" NOT NULL,
        next_attempt_at text COLLATE "C" NOT NULL,
        last_attempt_at text COLLATE "C",
        delivered_at text COLLATE "C",
        status integer,
        sent_transfer_syntax_uid text,
        last_error_code text,
        last_error text,
        lease_owner text COLLATE "C",
        lease_expires_at text COLLATE "C",
        UNIQUE NULLS NOT DISTINCT (destination, source_key, job_id, step_id)
      );
      CREATE INDEX outbox_due ON outbox(destination, state, next_attempt_at);
      CREATE INDEX outbox_job ON outbox(job_id);
      CREATE INDEX outbox_path ON outbox(path);
      CREATE TABLE api_tokens (
        id text COLLATE "C" PRIMARY KEY,
        user_name text COLLATE "C" NOT NULL,
        token_hash text COLLATE "C" NOT NULL UNIQUE,
        description text,
        created_at text COLLATE "C" NOT NULL,
        last_used_at text COLLATE "C",
        revoked_at text COLLATE "C"
      );
      CREATE INDEX api_tokens_user ON api_tokens(user_name);
      CREATE TABLE nodes (
        name text COLLATE "C" PRIMARY KEY,
        started_at text COLLATE "C" NOT NULL,
        heartbeat_at text COLLATE "C" NOT NULL,
        stopped_at text COLLATE "C",
        status text NOT NULL
      );
    `,
  },
  {
    version: 2,
    name: 'the node that received an object, and the node that claimed the latest attempt of a job',
    sql: `
      ALTER TABLE objects ADD COLUMN node text COLLATE "C";
      ALTER TABLE jobs ADD COLUMN node text COLLATE "C";
    `,
  },
  {
    version: 3,
    name: 'pseudonyms of the deidentify step (re-identification table) and the installation secret its UIDs derive from',
    sql: `
      CREATE TABLE pseudonyms (
        kind text COLLATE "C" NOT NULL,
        original text COLLATE "C" NOT NULL,
        pseudonym text COLLATE "C" NOT NULL,
        date_offset_days integer,
        original_name text,
        created_at text COLLATE "C" NOT NULL,
        created_by text,
        PRIMARY KEY (kind, original)
      );
      CREATE INDEX pseudonyms_pseudonym ON pseudonyms(kind, pseudonym);
      CREATE TABLE installation_secrets (
        name text COLLATE "C" PRIMARY KEY,
        value text NOT NULL,
        created_at text COLLATE "C" NOT NULL
      );
    `,
  },
  {
    version: 4,
    name: 'pipeline versions: the definition each job was queued with, kept once per content hash',
    sql: `
      CREATE TABLE pipeline_versions (
        hash text COLLATE "C" PRIMARY KEY,
        pipeline text COLLATE "C" NOT NULL,
        definition text NOT NULL,
        created_at text COLLATE "C" NOT NULL
      );
    `,
  },
  {
    version: 5,
    name: 'filing on arrival: the pipeline whose filing committed with the arrival (no job for it)',
    sql: `
      ALTER TABLE arrivals ADD COLUMN filed_by text COLLATE "C";
    `,
  },
  {
    version: 6,
    name: 'match keys: the C-FIND keys users query most, in indexed columns (existing rows are keyed by the index at start)',
    sql: `
      ALTER TABLE patients ADD COLUMN k_patient_id text COLLATE "C", ADD COLUMN k_patient_name text COLLATE "C", ADD COLUMN keys_pending integer;
      ALTER TABLE studies ADD COLUMN k_study_date text COLLATE "C", ADD COLUMN k_accession_number text COLLATE "C", ADD COLUMN k_study_id text COLLATE "C",
        ADD COLUMN keys_pending integer;
      ALTER TABLE series ADD COLUMN k_modality text COLLATE "C", ADD COLUMN k_series_number text COLLATE "C", ADD COLUMN keys_pending integer;
      UPDATE patients SET k_patient_id = chr(1), k_patient_name = chr(1), keys_pending = 1;
      UPDATE studies SET k_study_date = chr(1), k_accession_number = chr(1), k_study_id = chr(1), keys_pending = 1;
      UPDATE series SET k_modality = chr(1), k_series_number = chr(1), keys_pending = 1;
      CREATE INDEX patients_k_patient_id ON patients(database_name, k_patient_id);
      CREATE INDEX patients_k_patient_name ON patients(database_name, k_patient_name);
      CREATE INDEX studies_k_study_date ON studies(database_name, k_study_date);
      CREATE INDEX studies_k_accession_number ON studies(database_name, k_accession_number);
      CREATE INDEX studies_k_study_id ON studies(database_name, k_study_id);
      CREATE INDEX series_k_modality ON series(database_name, k_modality);
      CREATE INDEX patients_keys_pending ON patients(keys_pending) WHERE keys_pending IS NOT NULL;
      CREATE INDEX studies_keys_pending ON studies(keys_pending) WHERE keys_pending IS NOT NULL;
      CREATE INDEX series_keys_pending ON series(keys_pending) WHERE keys_pending IS NOT NULL;
    `,
  },
];
