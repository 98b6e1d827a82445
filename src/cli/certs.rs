//! `kgate certs`.
