import type Database from 'better-sqlite3';

/**
 * Statements prepared once per SQL text: preparing costs more than running the small statements
 * the stores run on every object and job.
 */
export function preparedStatements(db: Database.Database): (text: string) => Database.Statement {
  const statements = new Map<string, Database.Statement>();
  return (text) => {
    let statement = statements.get(text);
    if (!statement) {
      statement = db.prepare(text);
      statements.set(text, statement);
    }
    return statement;
  };
}
