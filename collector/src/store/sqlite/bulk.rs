//! The writer's multi-row `INSERT`s, bound without copies.
//!
//! rusqlite binds every text and blob parameter `SQLITE_TRANSIENT`: SQLite allocates a buffer,
//! copies the value in, and frees it when the parameter is bound again — for a span row its name,
//! service, ids and ≈ 400-byte body, five allocations and copies before `OP_MakeRecord` copies the
//! same bytes once more into the record. Here they are bound `SQLITE_STATIC`: SQLite reads them in
//! place. That needs the bytes to outlive every execution that may read them, which is what
//! [`Insert`]'s lifetime `'a` says: everything bound borrows for `'a`, and the statement keeps
//! the pointers no longer: it is finalized, or its bindings cleared before it goes back to the
//! writer's [`Statements`], when the `Insert` is dropped.

use std::collections::HashMap;
use std::ffi::{CStr, c_int, c_void};
use std::marker::PhantomData;
use std::ptr::NonNull;

use rusqlite::{Connection, ffi};

use crate::store::{StoreError, StoreResult};

/// Rows per multi-row `INSERT`. One execution of a statement (bind, step, reset, halt) costs
/// about as much as inserting a small row; 64 rows a statement took the writer's instructions for
/// the attribute index from 7,600 to 6,300 per span (callgrind, `--bench store`), and 64 × 13
/// span columns stays far below SQLite's 32,766 bound parameters.
pub(super) const ROWS_PER_INSERT: usize = 64;

/// The writer's multi-row statements, kept prepared between commits (keyed by their SQL): a
/// 64-row `INSERT` of spans took ≈ 500,000 instructions to prepare, ≈ 1.6 % of a commit of
/// 4,096 spans (callgrind, `--bench store`) and more of the small commits one SDK makes.
///
/// Must be dropped before the connection they were prepared on (a field of the writer declared
/// before its connection): closing a connection with statements not finalized fails.
#[derive(Default)]
pub(super) struct Statements {
    by_sql: HashMap<String, NonNull<ffi::sqlite3_stmt>>,
}

// SAFETY: the connection is opened in SQLite's multi-thread mode, where a connection and its
// statements may move between threads as long as one thread uses them at a time: they live in the
// writer, behind its mutex, as the connection does.
#[allow(unsafe_code, reason = "raw statement pointers are not Send by themselves")]
unsafe impl Send for Statements {}

impl Drop for Statements {
    #[allow(unsafe_code, reason = "finalizes through the C API (see the module docs)")]
    fn drop(&mut self) {
        for stmt in self.by_sql.values() {
            // SAFETY: each was prepared on the writer's connection, still open (see above), and
            // is finalized once; none has pointers bound (cleared before it was put back).
            unsafe {
                ffi::sqlite3_finalize(stmt.as_ptr());
            }
        }
    }
}

/// A prepared statement on the writer's connection whose parameters borrow for `'a`.
pub(super) struct Insert<'c, 'a> {
    conn: &'c Connection,
    stmt: NonNull<ffi::sqlite3_stmt>,
    /// Where the statement goes back when dropped, under its SQL (`None`: finalized instead).
    home: Option<(&'c mut Statements, String)>,
    /// The first bind that failed since the last execution (an SQLite result code), or `SQLITE_OK`.
    failed: c_int,
    _bound: PhantomData<&'a [u8]>,
}

impl<'c, 'a> Insert<'c, 'a> {
    /// Prepares `sql` (one statement), finalized when dropped.
    pub(super) fn prepare(conn: &'c Connection, sql: &str) -> StoreResult<Self> {
        Ok(Self { conn, stmt: prepare(conn, sql)?, home: None, failed: ffi::SQLITE_OK, _bound: PhantomData })
    }

    /// `sql` from `statements` (prepared there the first time), put back when dropped.
    pub(super) fn cached(conn: &'c Connection, statements: &'c mut Statements, sql: String) -> StoreResult<Self> {
        let stmt = match statements.by_sql.remove(&sql) {
            Some(stmt) => stmt,
            None => prepare(conn, &sql)?,
        };
        Ok(Self { conn, stmt, home: Some((statements, sql)), failed: ffi::SQLITE_OK, _bound: PhantomData })
    }

    /// Binds an integer to parameter `at` (1-based).
    #[allow(unsafe_code, reason = "binds through the C API (see the module docs)")]
    pub(super) fn int(&mut self, at: usize, value: i64) {
        // SAFETY: `stmt` is a live prepared statement; an out-of-range index is an error code.
        let rc = unsafe { ffi::sqlite3_bind_int64(self.stmt.as_ptr(), index(at), value) };
        self.note(rc);
    }

    /// Binds UTF-8 text to parameter `at`, read in place; `None` binds NULL.
    #[allow(unsafe_code, reason = "binds through the C API (see the module docs)")]
    pub(super) fn text(&mut self, at: usize, value: Option<&'a str>) {
        let Some(value) = value else { return self.null(at) };
        // SAFETY: `value` stays valid and unchanged for `'a`, which outlives the statement
        // (`SQLITE_STATIC`); its pointer is never null, so an empty string binds as empty text.
        let rc = unsafe {
            ffi::sqlite3_bind_text64(
                self.stmt.as_ptr(),
                index(at),
                value.as_ptr().cast(),
                value.len() as u64,
                ffi::SQLITE_STATIC(),
                UTF8,
            )
        };
        self.note(rc);
    }

    /// Binds a blob to parameter `at`, read in place; `None` binds NULL.
    #[allow(unsafe_code, reason = "binds through the C API (see the module docs)")]
    pub(super) fn blob(&mut self, at: usize, value: Option<&'a [u8]>) {
        let Some(value) = value else { return self.null(at) };
        // SAFETY: as for `text`; a slice's pointer is never null, so an empty slice binds as an
        // empty blob, not NULL.
        let rc = unsafe {
            ffi::sqlite3_bind_blob64(
                self.stmt.as_ptr(),
                index(at),
                value.as_ptr().cast::<c_void>(),
                value.len() as u64,
                ffi::SQLITE_STATIC(),
            )
        };
        self.note(rc);
    }

    /// Binds NULL to parameter `at`.
    #[allow(unsafe_code, reason = "binds through the C API (see the module docs)")]
    pub(super) fn null(&mut self, at: usize) {
        // SAFETY: `stmt` is a live prepared statement.
        let rc = unsafe { ffi::sqlite3_bind_null(self.stmt.as_ptr(), index(at)) };
        self.note(rc);
    }

    fn note(&mut self, rc: c_int) {
        if rc != ffi::SQLITE_OK && self.failed == ffi::SQLITE_OK {
            self.failed = rc;
        }
    }

    /// Runs the statement once with the parameters bound; returns the rows it changed. A failed
    /// bind since the last execution fails it without running it.
    #[allow(unsafe_code, reason = "steps through the C API (see the module docs)")]
    pub(super) fn execute(&mut self) -> StoreResult<usize> {
        if self.failed != ffi::SQLITE_OK {
            let rc = std::mem::replace(&mut self.failed, ffi::SQLITE_OK);
            return Err(error(self.conn, rc));
        }
        // SAFETY: `stmt` is a live prepared statement of `conn`, whose bound pointers are valid
        // for `'a` (see the module docs); reset after every step, as the C API requires before the
        // next one.
        unsafe {
            let rc = ffi::sqlite3_step(self.stmt.as_ptr());
            if rc != ffi::SQLITE_DONE {
                let err = error(self.conn, rc);
                ffi::sqlite3_reset(self.stmt.as_ptr());
                return Err(err);
            }
            let changed = ffi::sqlite3_changes64(self.conn.handle());
            let rc = ffi::sqlite3_reset(self.stmt.as_ptr());
            if rc != ffi::SQLITE_OK {
                return Err(error(self.conn, rc));
            }
            Ok(usize::try_from(changed).unwrap_or(0))
        }
    }
}

impl Drop for Insert<'_, '_> {
    #[allow(unsafe_code, reason = "finalizes or clears through the C API (see the module docs)")]
    fn drop(&mut self) {
        match self.home.take() {
            // SAFETY: `stmt` is live and not running (every step is followed by a reset); once its
            // parameters are NULL again it holds no pointer into data borrowed for `'a`.
            Some((statements, sql)) => unsafe {
                ffi::sqlite3_clear_bindings(self.stmt.as_ptr());
                statements.by_sql.insert(sql, self.stmt);
            },
            // SAFETY: `stmt` was prepared on `conn`, which outlives `self`, and is finalized once.
            None => unsafe {
                ffi::sqlite3_finalize(self.stmt.as_ptr());
            },
        }
    }
}

/// Prepares `sql` (one statement) on `conn`.
#[allow(unsafe_code, reason = "prepares through the C API: rusqlite binds only by copying")]
fn prepare(conn: &Connection, sql: &str) -> StoreResult<NonNull<ffi::sqlite3_stmt>> {
    let len = c_int::try_from(sql.len()).map_err(|_| StoreError::Database("statement too long".into()))?;
    let mut stmt = std::ptr::null_mut();
    // SAFETY: the handle is the open connection `conn` borrows; `sql` is valid for `len` bytes (it
    // need not end with NUL when its length is given); `stmt` is written before it is read.
    let rc = unsafe {
        ffi::sqlite3_prepare_v3(conn.handle(), sql.as_ptr().cast(), len, 0, &raw mut stmt, std::ptr::null_mut())
    };
    if rc != ffi::SQLITE_OK {
        return Err(error(conn, rc));
    }
    NonNull::new(stmt).ok_or_else(|| StoreError::Database("an empty statement".into()))
}

/// `SQLITE_UTF8` as `sqlite3_bind_text64` takes it (an `unsigned char`).
const UTF8: u8 = 1;
const _: () = assert!(ffi::SQLITE_UTF8 == 1);

/// A parameter index as the C API takes it (a statement has at most 32,766; larger ones fail
/// the bind as out of range).
fn index(at: usize) -> c_int {
    c_int::try_from(at).unwrap_or(c_int::MAX)
}

/// The connection's last error, as rusqlite would have reported it.
#[allow(unsafe_code, reason = "reads the connection's error message through the C API")]
fn error(conn: &Connection, rc: c_int) -> StoreError {
    // SAFETY: the handle is open; `sqlite3_errmsg` returns a NUL-terminated string owned by the
    // connection, valid until its next call, and copied here at once.
    let message = unsafe {
        let msg = ffi::sqlite3_errmsg(conn.handle());
        (!msg.is_null()).then(|| CStr::from_ptr(msg).to_string_lossy().into_owned())
    };
    StoreError::Database(rusqlite::Error::SqliteFailure(ffi::Error::new(rc), message).to_string())
}

/// `(?, …), (?, …)…`: `rows` rows of `width` parameters.
pub(super) fn values(width: usize, rows: usize) -> String {
    let row = format!("({})", vec!["?"; width].join(", "));
    vec![row; rows].join(", ")
}

/// Runs `head` (`INSERT OR IGNORE … VALUES `) over `rows`, [`ROWS_PER_INSERT`] a statement (that
/// one kept in `statements`); `bind` binds one row's `width` parameters from the given 1-based
/// index. Returns the rows the statements
/// changed: callers that expect every row to be new compare it with `rows.len()` and fail the
/// transaction otherwise.
///
/// `OR IGNORE` even where a conflict is a bug: a multi-row statement that can abort on a constraint
/// needs a statement journal inside a transaction (a copy of every page it touches, to undo the
/// rows before the failing one): 3.7 % of the writer's instructions (callgrind, `--bench store`;
/// its CPU time moved within the noise). A transaction that fails is rolled back whole, so the
/// rows an ignored conflict left behind never commit.
pub(super) fn insert_many<'a, R>(
    conn: &Connection,
    statements: &mut Statements,
    head: &str,
    width: usize,
    rows: &'a [R],
    bind: impl FnMut(&mut Insert<'_, 'a>, &'a R, usize),
) -> StoreResult<usize> {
    insert_many_then(conn, statements, head, width, rows, bind, "")
}

/// [`insert_many`] with `tail` after the rows (an upsert clause).
pub(super) fn insert_many_then<'a, R>(
    conn: &Connection,
    statements: &mut Statements,
    head: &str,
    width: usize,
    rows: &'a [R],
    mut bind: impl FnMut(&mut Insert<'_, 'a>, &'a R, usize),
    tail: &str,
) -> StoreResult<usize> {
    let mut full = if rows.len() >= ROWS_PER_INSERT {
        Some(Insert::cached(conn, statements, format!("{head}{}{tail}", values(width, ROWS_PER_INSERT)))?)
    } else {
        None
    };
    let mut changed = 0;
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let mut short = None;
        let stmt = match &mut full {
            Some(stmt) if chunk.len() == ROWS_PER_INSERT => stmt,
            _ => short.insert(Insert::prepare(conn, &format!("{head}{}{tail}", values(width, chunk.len())))?),
        };
        for (i, row) in chunk.iter().enumerate() {
            bind(stmt, row, 1 + i * width);
        }
        changed += stmt.execute()?;
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, s TEXT, b BLOB) STRICT").unwrap();
        conn
    }

    type Row = (i64, Option<String>, Option<Vec<u8>>);

    /// Inserts `rows` into `t` through `insert_many`; returns the rows changed.
    fn insert(conn: &Connection, statements: &mut Statements, rows: &[Row]) -> usize {
        insert_many(conn, statements, "INSERT INTO t (id, s, b) VALUES ", 3, rows, |stmt, (id, s, b), at| {
            stmt.int(at, *id);
            stmt.text(at + 1, s.as_deref());
            stmt.blob(at + 2, b.as_deref());
        })
        .unwrap()
    }

    fn stored(conn: &Connection) -> Vec<Row> {
        let mut stmt = conn.prepare("SELECT id, s, b FROM t ORDER BY id").unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().collect::<Result<_, _>>().unwrap()
    }

    #[test]
    fn values_bound_in_place_are_stored_as_given() {
        let conn = conn();
        let mut statements = Statements::default();
        let rows: Vec<Row> = (0..300)
            .map(|i| (i, (i % 3 != 0).then(|| format!("row {i}")), (i % 5 != 0).then(|| vec![i as u8; i as usize])))
            .collect();
        assert_eq!(insert(&conn, &mut statements, &rows[..150]), 150, "two statements of 64 rows, one of 22");
        // Again with the 64-row statement kept from the first call (its bindings cleared between).
        assert_eq!(statements.by_sql.len(), 1);
        assert_eq!(insert(&conn, &mut statements, &rows[150..]), 150);
        assert_eq!(stored(&conn), rows);
        let zero: String = conn.query_row("SELECT typeof(b) FROM t WHERE id = 0", [], |r| r.get(0)).unwrap();
        assert_eq!(zero, "null", "None binds NULL");
    }

    #[test]
    fn an_empty_blob_and_text_are_not_null() {
        let conn = conn();
        insert(&conn, &mut Statements::default(), &[(7, Some(String::new()), Some(Vec::new()))]);
        let types: String = conn.query_row("SELECT typeof(s) || '/' || typeof(b) FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(types, "text/blob");
        assert_eq!(stored(&conn), [(7, Some(String::new()), Some(Vec::new()))]);
    }

    #[test]
    fn failures_are_errors_and_store_nothing() {
        let conn = conn();
        // A bind out of range fails the execution without running it.
        let mut stmt = Insert::prepare(&conn, "INSERT INTO t (id) VALUES (?)").unwrap();
        stmt.int(2, 1);
        let err = stmt.execute().unwrap_err().to_string();
        assert!(err.contains("range"), "{err}");
        // A constraint fails at the step, with SQLite's message.
        stmt.int(1, 1);
        assert_eq!(stmt.execute().unwrap(), 1);
        stmt.int(1, 1);
        let err = stmt.execute().unwrap_err().to_string();
        assert!(err.contains("UNIQUE constraint failed"), "{err}");
        // STRICT: a text id is refused.
        let mut text = Insert::prepare(&conn, "INSERT INTO t (id, b) VALUES (2, ?)").unwrap();
        text.text(1, Some("not a blob"));
        let err = text.execute().unwrap_err().to_string();
        assert!(err.contains("cannot store TEXT value in BLOB column"), "{err}");
        drop((stmt, text));
        let n: i64 = conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 1, "only the one good row");
        // A statement that does not prepare.
        let err = Insert::prepare(&conn, "INSERT INTO nowhere VALUES (1)").err().unwrap().to_string();
        assert!(err.contains("no such table"), "{err}");
    }
}
