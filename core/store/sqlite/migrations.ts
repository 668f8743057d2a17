/**
 * Versioned schema of the embedded index. Each migration runs once, in order, inside a
 * transaction; a released migration is never edited, only followed by a new one.
 * Ids are text (UUIDv7) so that rows made by several nodes never collide.
 */
export const migrations: readonly { version: number; name: string; sql: string }[] = [
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
];
