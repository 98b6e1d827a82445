//! Partition logs: segments, indexes, recovery, retention, producer state.
