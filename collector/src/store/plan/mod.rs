//! What the SQLite and PostgreSQL stores decide identically, written once: which rows a commit
//! writes and what it answers ([`commit`]), how a listing walks the traces ([`list`]), and
//! which statistics rows a commit merges into ([`stats`]). The
//! stores only execute the SQL of each step.

pub(crate) mod commit;
pub(crate) mod list;
pub(crate) mod stats;
