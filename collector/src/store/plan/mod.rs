//! What the SQLite and PostgreSQL stores decide identically, written once: which rows a commit
//! writes and what it answers ([`commit`]). The stores only execute the SQL of each step.

pub(crate) mod commit;
