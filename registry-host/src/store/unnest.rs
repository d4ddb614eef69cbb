//! PostgreSQL's bulk insert: one array per column, `INSERT … SELECT * FROM unnest(…)`.
//!
//! A multi-row `VALUES` list binds one parameter per value: a 500-row chunk of task
//! versions is 7,500 parameters, which the server parses, plans and binds one by one. The
//! same chunk as fifteen arrays is one short statement, and the rows cross the wire in the
//! binary array format. Same rows, same transaction; only
//! the statement's shape differs from SQLite's (see [`InsertMany`](super::InsertMany)).

use diesel::QueryResult;
use diesel_async::AsyncPgConnection;
use futures::future::BoxFuture;

/// Rows PostgreSQL inserts column-wise (see the module's documentation).
pub(crate) trait UnnestRows: Sized + Send + 'static {
    fn insert_unnest(rows: Vec<Self>, conn: &mut AsyncPgConnection) -> BoxFuture<'_, QueryResult<usize>>;
}

/// Implements [`UnnestRows`] for a row struct: `table`, then each field with its column's
/// SQL type (diesel's) and PostgreSQL's array cast, in the table's column order.
macro_rules! unnest_rows {
    ($row:ty => $table:literal { $($field:ident : $sql:ty = $cast:literal),+ $(,)? }) => {
        impl $crate::store::unnest::UnnestRows for $row {
            fn insert_unnest(
                rows: Vec<Self>,
                conn: &mut diesel_async::AsyncPgConnection,
            ) -> futures::future::BoxFuture<'_, diesel::QueryResult<usize>> {
                // Built once per row type.
                static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
                    let columns = [$(stringify!($field)),+];
                    let casts = [$($cast),+];
                    let arrays = casts
                        .iter()
                        .enumerate()
                        .map(|(i, cast)| format!("${}::{cast}[]", i + 1))
                        .collect::<Vec<_>>();
                    format!(
                        "INSERT INTO {} ({}) SELECT * FROM unnest({})",
                        $table,
                        columns.join(", "),
                        arrays.join(", ")
                    )
                });
                $(let mut $field = Vec::with_capacity(rows.len());)+
                for row in rows {
                    $($field.push(row.$field);)+
                }
                let query = diesel::sql_query(SQL.as_str())
                    $(.bind::<diesel::sql_types::Array<$sql>, _>($field))+;
                Box::pin(diesel_async::RunQueryDsl::execute(query, conn))
            }
        }
    };
}
pub(crate) use unnest_rows;
