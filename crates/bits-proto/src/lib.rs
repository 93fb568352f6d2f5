//! bits-proto
