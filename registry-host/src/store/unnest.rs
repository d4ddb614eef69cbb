//! PostgreSQL's bulk insert: one array per column, `INSERT … SELECT * FROM unnest(…)`.
//!
//! A multi-row `VALUES` list binds one parameter per value: a 500-row chunk of task
//! versions is 7,500 parameters, which the server parses, plans and binds one by one. The
//! same chunk as fifteen arrays is one short statement, and the rows cross the wire in the
//! binary array format. Same rows, same transaction; only the statement's shape differs
//! from SQLite's (see [`InsertMany`](super::InsertMany)).

use diesel::QueryResult;
use diesel::sql_types::{BigInt, Bool, Integer, Nullable, Text};
use diesel_async::AsyncPgConnection;
use futures::future::BoxFuture;

/// Rows PostgreSQL inserts column-wise (see the module's documentation).
pub(crate) trait UnnestRows: Sized + Send + 'static {
    fn insert_unnest(rows: Vec<Self>, conn: &mut AsyncPgConnection) -> BoxFuture<'_, QueryResult<usize>>;
}

/// PostgreSQL's name of a column type, for the array cast (`$1::text[]`).
pub(crate) trait PgArrayCast {
    const CAST: &'static str;
}

impl PgArrayCast for Text {
    const CAST: &'static str = "text";
}
impl PgArrayCast for BigInt {
    const CAST: &'static str = "int8";
}
impl PgArrayCast for Integer {
    const CAST: &'static str = "int4";
}
impl PgArrayCast for Bool {
    const CAST: &'static str = "bool";
}
impl<T: PgArrayCast + diesel::sql_types::SqlType> PgArrayCast for Nullable<T> {
    const CAST: &'static str = T::CAST;
}

/// Declares an insertable row struct of a table (`#[derive(Insertable)]` included) and
/// implements [`UnnestRows`] for it; each column's SQL type comes from the table's schema,
/// so the fields are written once.
macro_rules! insertable_rows {
    (
        $(#[$meta:meta])*
        struct $row:ident for $table:ident {
            $($field:ident : $ty:ty),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(diesel::Insertable)]
        #[diesel(table_name = $table)]
        struct $row {
            $($field: $ty),+
        }

        impl $crate::store::unnest::UnnestRows for $row {
            fn insert_unnest(
                rows: Vec<Self>,
                conn: &mut diesel_async::AsyncPgConnection,
            ) -> futures::future::BoxFuture<'_, diesel::QueryResult<usize>> {
                // Built once per row type.
                static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
                    let columns = [$(stringify!($field)),+];
                    let arrays = [$(
                        <<$table::$field as diesel::Expression>::SqlType
                            as $crate::store::unnest::PgArrayCast>::CAST
                    ),+]
                    .iter()
                    .enumerate()
                    .map(|(i, cast)| format!("${}::{cast}[]", i + 1))
                    .collect::<Vec<_>>();
                    format!(
                        "INSERT INTO {} ({}) SELECT * FROM unnest({})",
                        stringify!($table),
                        columns.join(", "),
                        arrays.join(", ")
                    )
                });
                $(let mut $field = Vec::with_capacity(rows.len());)+
                for row in rows {
                    $($field.push(row.$field);)+
                }
                let query = diesel::sql_query(SQL.as_str())
                    $(.bind::<diesel::sql_types::Array<<$table::$field as diesel::Expression>::SqlType>, _>($field))+;
                Box::pin(diesel_async::RunQueryDsl::execute(query, conn))
            }
        }
    };
}
pub(crate) use insertable_rows;
