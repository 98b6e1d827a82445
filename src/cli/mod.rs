//! Subcommands of the `kgate` binary that are library code so they can be tested.
pub mod acls;
pub mod certs;
pub mod doctor;
pub mod principal;
pub mod users;
