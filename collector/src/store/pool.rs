//! The pool of read connections both stores keep: a caller takes a free connection (waiting while
//! none is free) and it goes back when the guard drops.

use std::sync::{Condvar, Mutex, PoisonError};

use super::common::lock;
use super::{StoreError, StoreResult};

/// A pool of connections `C`.
pub(crate) struct Pool<C> {
    conns: Mutex<Vec<C>>,
    available: Condvar,
}

/// A connection taken from a [`Pool`], returned on drop.
pub(crate) struct Pooled<'a, C> {
    pool: &'a Pool<C>,
    conn: Option<C>,
}

impl<C> Pool<C> {
    pub(crate) fn new(conns: Vec<C>) -> Self {
        Self { conns: Mutex::new(conns), available: Condvar::new() }
    }

    /// A free connection, waiting until one is.
    pub(crate) fn get(&self) -> Pooled<'_, C> {
        let mut conns = lock(&self.conns);
        loop {
            if let Some(conn) = conns.pop() {
                return Pooled { pool: self, conn: Some(conn) };
            }
            conns = self.available.wait(conns).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Drops the free connections (when the store closes).
    pub(crate) fn clear(&self) {
        lock(&self.conns).clear();
    }
}

impl<C> Pooled<'_, C> {
    /// The connection.
    pub(crate) fn conn(&mut self) -> StoreResult<&mut C> {
        self.conn.as_mut().ok_or_else(|| StoreError::Database("reader pool corrupted".into()))
    }
}

impl<C> Drop for Pooled<'_, C> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            lock(&self.pool.conns).push(conn);
            self.pool.available.notify_one();
        }
    }
}
