//! Usage metering for billing: the monthly counters in Redis ([`meter`]), the byte counting of
//! bodies ([`body`]), the immutable month-end snapshots in MongoDB ([`snapshot`]) and the
//! storage gauge ([`storage`]).

pub mod body;
pub mod jobs;
pub mod meter;
pub mod snapshot;
pub mod storage;
