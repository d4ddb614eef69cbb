//! A pool of read-only catalogue connections, for `serve`: requests read in parallel, each
//! on a connection of its own (`deadpool`), instead of queueing on one.

use super::{DatabaseUrl, Store, StoreError};
use deadpool::managed::{Manager, Metrics, Pool, RecycleError, RecycleResult, Timeouts};
use std::time::Duration;

/// Read-only connections to one catalogue (see [`reader_pool`]).
pub type StorePool = Pool<ReaderManager>;

/// A connection taken from a [`StorePool`]; back in the pool when dropped.
pub type PooledStore = deadpool::managed::Object<ReaderManager>;

/// Makes and checks the pool's connections.
#[derive(Debug)]
pub struct ReaderManager {
    url: DatabaseUrl,
}

impl Manager for ReaderManager {
    type Type = Store;
    type Error = StoreError;

    async fn create(&self) -> Result<Store, StoreError> {
        Store::open_read_only(&self.url).await
    }

    /// A connection the database dropped (a restart, a failover) is replaced, not handed out.
    async fn recycle(&self, store: &mut Store, _: &Metrics) -> RecycleResult<StoreError> {
        store.generation().await.map(drop).map_err(RecycleError::Backend)
    }
}

/// How long a request waits for a free connection, or for a new one, before it is answered
/// `503`.
const WAIT: Duration = Duration::from_secs(10);

/// A pool of at most `size` read-only connections to the (migrated) catalogue at `url`,
/// opened as requests need them.
pub fn reader_pool(url: &DatabaseUrl, size: usize) -> StorePool {
    Pool::builder(ReaderManager { url: url.clone() })
        .max_size(size.max(1))
        .timeouts(Timeouts {
            wait: Some(WAIT),
            create: Some(WAIT),
            recycle: Some(WAIT),
        })
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .expect("a pool with a runtime and a size builds")
}
