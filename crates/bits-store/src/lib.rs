//! bits-store
