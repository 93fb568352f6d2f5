//! bits-test-support
