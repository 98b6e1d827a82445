//! Upstream mode (in progress).
