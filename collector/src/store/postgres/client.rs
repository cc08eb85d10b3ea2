//! The PostgreSQL client plumbing: error mapping, driving client futures on any thread, typed
//! parameters, connecting, and the store's own runtime (see the module docs of [`super`]).

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Config, NoTls, Row};

use crate::store::{StoreError, StoreResult};

/// A `tokio-postgres` error as text, with the server's message when there is one.
pub(super) fn describe(e: &tokio_postgres::Error) -> String {
    match (e.as_db_error(), std::error::Error::source(e)) {
        (Some(db), _) => format!("{db} (SQLSTATE {})", db.code().code()),
        (None, Some(cause)) => format!("{e}: {cause}"),
        (None, None) => e.to_string(),
    }
}

/// Maps `tokio-postgres` errors into [`StoreError::Database`].
pub(super) trait Db<T> {
    fn db(self) -> StoreResult<T>;
}

impl<T> Db<T> for Result<T, tokio_postgres::Error> {
    fn db(self) -> StoreResult<T> {
        self.map_err(|e| StoreError::Database(describe(&e)))
    }
}

// === running client futures ===

/// Wakes a parked thread.
struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Drives `fut` to completion on this thread. Client futures only exchange messages with their
/// connection's task, which runs on the store's runtime; nothing here needs a Tokio context, so
/// this works on any thread.
pub(super) fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

/// Typed statement parameters.
pub(super) type Params<'a> = Vec<(&'a (dyn ToSql + Sync), Type)>;

/// An owned statement parameter (for statements built at run time).
#[derive(Clone, Debug)]
pub(super) enum Param {
    Int(i64),
    Int4(i32),
    Text(String),
}

impl Param {
    fn typed(&self) -> (&(dyn ToSql + Sync), Type) {
        match self {
            Self::Int(v) => (v, Type::INT8),
            Self::Int4(v) => (v, Type::INT4),
            Self::Text(v) => (v, Type::TEXT),
        }
    }
}

pub(super) fn typed(params: &[Param]) -> Params<'_> {
    params.iter().map(Param::typed).collect()
}

/// A column as `T`.
pub(super) fn get<'r, T: tokio_postgres::types::FromSql<'r>>(row: &'r Row, idx: usize) -> StoreResult<T> {
    row.try_get(idx).db()
}

/// Connects and spawns the connection's task on the store's runtime.
pub(super) fn open_connection(
    runtime: &tokio::runtime::Handle,
    config: &Config,
    read_only: bool,
) -> StoreResult<Client> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let config = config.clone();
    runtime.spawn(async move {
        let out = match config.connect(NoTls).await {
            Ok((client, connection)) => {
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::warn!(error = %describe(&e), "PostgreSQL connection ended");
                    }
                });
                Ok(client)
            }
            Err(e) => Err(e),
        };
        let _ = tx.send(out);
    });
    let client = rx.recv().map_err(|_| StoreError::Database("the PostgreSQL runtime is gone".into()))?.db()?;
    if read_only {
        block_on(client.batch_execute("SET default_transaction_read_only = on")).db()?;
    }
    Ok(client)
}

/// The store's runtime, stopped on drop without waiting: the drop may happen inside an async
/// context (the collector opens its store in its async startup), where dropping a runtime the
/// ordinary way panics.
pub(super) struct OwnedRuntime(pub(super) Option<tokio::runtime::Runtime>);

impl Drop for OwnedRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}
