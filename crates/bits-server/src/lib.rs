//! bits-server
