//! Policy as pure data: what a principal may do ([`acl`]). No I/O, no async, no configuration structs:
//! loading, hot reload and the per-request pipeline that consults it live elsewhere and hand it plain values.
#![forbid(unsafe_code)]

pub mod acl;
pub mod acl_file;
