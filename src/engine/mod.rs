//! The mio driver (being written).
