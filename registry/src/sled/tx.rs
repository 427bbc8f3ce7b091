//! What every part of the sled engine writes with: one transaction over a set of trees,
//! then a flush, and the conversions between sled's transaction errors and
//! [`RegistryError`].

use sled::transaction::{
    ConflictableTransactionError, TransactionError, Transactional, TransactionalTree,
};
use sled::{Db, Tree};

use crate::codec::{decode, encode};
use crate::error::{RegistryError, Result};

pub(super) type TxResult<T> = std::result::Result<T, ConflictableTransactionError<RegistryError>>;

pub(super) fn engine(e: sled::Error) -> RegistryError {
    RegistryError::Engine(e.to_string())
}

pub(super) fn tx_error(e: TransactionError<RegistryError>) -> RegistryError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => engine(e),
    }
}

pub(super) fn abort<T>(e: RegistryError) -> TxResult<T> {
    Err(ConflictableTransactionError::Abort(e))
}

pub(super) fn decode_tx<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> TxResult<T> {
    decode(bytes).map_err(ConflictableTransactionError::Abort)
}

pub(super) fn encode_tx<T: serde::Serialize>(record: &T) -> TxResult<Vec<u8>> {
    encode(record).map_err(ConflictableTransactionError::Abort)
}

/// Runs `f` as one transaction over `trees`, then flushes `db`: the write is durable when
/// this returns.
pub(super) fn commit<T>(
    db: &Db,
    trees: &[Tree],
    f: impl Fn(&[TransactionalTree]) -> TxResult<T>,
) -> Result<T> {
    let out = trees.transaction(|t| f(t)).map_err(tx_error)?;
    db.flush().map_err(engine)?;
    Ok(out)
}
