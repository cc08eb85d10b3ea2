//! What the SQLite and PostgreSQL stores decide identically, written once: which rows a commit
//! writes and what it answers ([`commit`]), how a listing walks the traces ([`list`]),
//! which statistics rows a commit merges into ([`stats`]), and which spans a statistics scan
//! reads ([`scan`]). The stores only execute the SQL of each step.

pub(crate) mod commit;
pub(crate) mod list;
pub(crate) mod scan;
pub(crate) mod stats;
