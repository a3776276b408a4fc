//! SQLite storage: documents (tasks, queues, projects, workers) as JSON text, events in their
//! own table, and a small key/value `meta` table. Knows nothing about ClearML semantics.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use crate::error::ApiError;

/// The document collections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Tasks,
    Queues,
    Projects,
    Workers,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Tasks => "tasks",
            Table::Queues => "queues",
            Table::Projects => "projects",
            Table::Workers => "workers",
        }
    }
}

/// One open database (a file, or in memory).
pub struct Store {
    conn: Connection,
}

fn db_err(err: rusqlite::Error) -> ApiError {
    ApiError::internal(format!("database: {err}"))
}

fn parse_doc(text: String) -> Result<Value, ApiError> {
    serde_json::from_str(&text).map_err(|e| ApiError::internal(format!("stored document: {e}")))
}

impl Store {
    /// Opens (and creates if needed) the database at `path`, or an in-memory one.
    pub fn open(path: Option<&Path>) -> anyhow::Result<Store> {
        let conn = match path {
            Some(p) => Connection::open(p)?,
            None => Connection::open_in_memory()?,
        };
        if path.is_some() {
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
        }
        let mut ddl = String::new();
        for t in [Table::Tasks, Table::Queues, Table::Projects, Table::Workers] {
            ddl.push_str(&format!(
                "CREATE TABLE IF NOT EXISTS {} (seq INTEGER PRIMARY KEY AUTOINCREMENT, \
                 id TEXT NOT NULL UNIQUE, doc TEXT NOT NULL);",
                t.name()
            ));
        }
        ddl.push_str(
            "CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY AUTOINCREMENT, \
             task TEXT NOT NULL, type TEXT NOT NULL, timestamp INTEGER NOT NULL, \
             event_id TEXT, doc TEXT NOT NULL);
             CREATE INDEX IF NOT EXISTS events_task ON events (task, type, timestamp);
             CREATE UNIQUE INDEX IF NOT EXISTS events_id ON events (event_id);
             CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
        );
        conn.execute_batch(&ddl)?;
        Ok(Store { conn })
    }

    pub fn get(&self, table: Table, id: &str) -> Result<Option<Value>, ApiError> {
        let text: Option<String> = self
            .conn
            .query_row(
                &format!("SELECT doc FROM {} WHERE id = ?1", table.name()),
                [id],
                |r| r.get(0),
            )
            .optional()
            .map_err(db_err)?;
        text.map(parse_doc).transpose()
    }

    /// Inserts or replaces a document; the insertion order of new ids is kept.
    pub fn put(&self, table: Table, id: &str, doc: &Value) -> Result<(), ApiError> {
        self.conn
            .execute(
                &format!(
                    "INSERT INTO {} (id, doc) VALUES (?1, ?2) \
                     ON CONFLICT(id) DO UPDATE SET doc = excluded.doc",
                    table.name()
                ),
                params![id, doc.to_string()],
            )
            .map_err(db_err)?;
        Ok(())
    }

    /// Replaces a task only while its stored status is still `expected` (compare-and-set).
    pub fn put_task_if_status(
        &self,
        id: &str,
        expected: &str,
        doc: &Value,
    ) -> Result<bool, ApiError> {
        let n = self
            .conn
            .execute(
                "UPDATE tasks SET doc = ?1 WHERE id = ?2 AND json_extract(doc, '$.status') = ?3",
                params![doc.to_string(), id, expected],
            )
            .map_err(db_err)?;
        Ok(n == 1)
    }

    pub fn delete(&self, table: Table, id: &str) -> Result<bool, ApiError> {
        let n = self
            .conn
            .execute(&format!("DELETE FROM {} WHERE id = ?1", table.name()), [id])
            .map_err(db_err)?;
        Ok(n > 0)
    }

    /// Every document of a table, in insertion order.
    pub fn all(&self, table: Table) -> Result<Vec<Value>, ApiError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT doc FROM {} ORDER BY seq", table.name()))
            .map_err(db_err)?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(db_err)?;
        let mut out = Vec::new();
        for row in rows {
            out.push(parse_doc(row.map_err(db_err)?)?);
        }
        Ok(out)
    }

    /// Stores one event. `event_id` (when given) replaces an earlier event with the same id.
    pub fn add_event(
        &self,
        task: &str,
        kind: &str,
        timestamp: i64,
        event_id: Option<&str>,
        doc: &Value,
    ) -> Result<(), ApiError> {
        self.conn
            .execute(
                "INSERT INTO events (task, type, timestamp, event_id, doc) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(event_id) DO UPDATE SET \
                 timestamp = excluded.timestamp, doc = excluded.doc",
                params![task, kind, timestamp, event_id, doc.to_string()],
            )
            .map_err(db_err)?;
        Ok(())
    }

    /// Events of a task as `(seq, timestamp, doc)`, oldest first (by timestamp, then arrival),
    /// optionally of one type only.
    pub fn events(
        &self,
        task: &str,
        kind: Option<&str>,
    ) -> Result<Vec<(i64, i64, Value)>, ApiError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT seq, timestamp, doc FROM events WHERE task = ?1 \
                 AND (?2 IS NULL OR type = ?2) ORDER BY timestamp, seq",
            )
            .map_err(db_err)?;
        let rows = stmt
            .query_map(params![task, kind], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(db_err)?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, ts, text) = row.map_err(db_err)?;
            out.push((seq, ts, parse_doc(text)?));
        }
        Ok(out)
    }

    pub fn delete_events(&self, task: &str) -> Result<usize, ApiError> {
        self.conn
            .execute("DELETE FROM events WHERE task = ?1", [task])
            .map_err(db_err)
    }

    pub fn meta_get(&self, key: &str) -> Result<Option<String>, ApiError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(db_err)
    }

    pub fn meta_set(&self, key: &str, value: &str) -> Result<(), ApiError> {
        self.conn
            .execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) \
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map_err(db_err)?;
        Ok(())
    }

    /// Runs `f` inside one SQLite transaction (committed when `f` succeeds).
    pub fn transaction<T>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        self.conn.execute_batch("BEGIN").map_err(db_err)?;
        match f(self) {
            Ok(v) => {
                self.conn.execute_batch("COMMIT").map_err(db_err)?;
                Ok(v)
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }
}
