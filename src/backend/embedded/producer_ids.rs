//! Producer ids for idempotent producers (InitProducerId), never reused across restarts.
//!
//! Ids are handed out from blocks; the end of the current block is persisted before any id in it
//! is given, so after a crash the next start begins past every id ever given.
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::topics::{lock, write_atomically};

const BLOCK: i64 = 1000;

pub struct ProducerIdAllocator {
    file: PathBuf,
    /// (next id to hand out, end of the persisted block)
    state: Mutex<(i64, i64)>,
}

impl ProducerIdAllocator {
    pub fn open(meta_dir: &Path) -> std::io::Result<ProducerIdAllocator> {
        let file = meta_dir.join("producer_ids");
        let next = match std::fs::read_to_string(&file) {
            Ok(text) => text.trim().parse::<i64>().map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", file.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        Ok(ProducerIdAllocator {
            file,
            state: Mutex::new((next, next)),
        })
    }

    pub fn next_id(&self) -> std::io::Result<i64> {
        let mut state = lock(&self.state);
        if state.0 >= state.1 {
            let end = state.0 + BLOCK;
            write_atomically(&self.file, end.to_string().as_bytes())?;
            state.1 = end;
        }
        let id = state.0;
        state.0 += 1;
        Ok(id)
    }

    /// InitProducerId: idempotent producers get a fresh id with epoch 0 every time (as Kafka does
    /// when no transactional id is given). Transactions are not supported: kgate does not list the
    /// transaction APIs in ApiVersions, and a transactional InitProducerId is refused.
    pub fn init_producer_id(&self, req: &InitProducerIdRequest) -> InitProducerIdResponse {
        let response = InitProducerIdResponse::default()
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        if req.transactional_id.as_ref().is_some_and(|t| !t.is_empty()) {
            tracing::info!(
                "refused a transactional InitProducerId: kgate's embedded broker does not support transactions"
            );
            return response.with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code());
        }
        match self.next_id() {
            Ok(id) => response.with_producer_id(ProducerId(id)).with_producer_epoch(0),
            Err(e) => {
                tracing::warn!("cannot persist producer ids: {e}");
                response.with_error_code(ResponseError::CoordinatorNotAvailable.code())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_never_reused_after_restart() {
        let dir = tempfile::tempdir().unwrap();
        let a = ProducerIdAllocator::open(dir.path()).unwrap();
        assert_eq!(a.next_id().unwrap(), 0);
        assert_eq!(a.next_id().unwrap(), 1);
        drop(a);
        let b = ProducerIdAllocator::open(dir.path()).unwrap();
        assert_eq!(b.next_id().unwrap(), BLOCK);
    }
}
