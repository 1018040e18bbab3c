//! Token store selection flags (`--redis ...`), shared by `proxy` and `standalone`.

use std::sync::Arc;

use clap::Args;

use super::memory::MemoryStore;
use super::TokenStore;

/// Where tokens and codes live.
#[derive(Args, Debug, Clone)]
pub struct StoreArgs {
    /// Redis URL for the token store; without it tokens live in process memory.
    #[arg(long, value_name = "URL", env = "GATEHOUSE_REDIS")]
    pub redis: Option<String>,

    /// Maximum number of live tokens and codes kept by the in-memory store.
    #[arg(long, default_value_t = 1_000_000)]
    pub memory_capacity: usize,
}

impl StoreArgs {
    /// Build the configured token store.
    pub async fn build(&self) -> anyhow::Result<Arc<dyn TokenStore>> {
        match &self.redis {
            None => Ok(Arc::new(MemoryStore::new(self.memory_capacity))),
            Some(_) => anyhow::bail!("the Redis token store is not wired yet"),
        }
    }
}
