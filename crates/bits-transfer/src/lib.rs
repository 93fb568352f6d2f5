//! bits-transfer
