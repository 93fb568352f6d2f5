//! The BITS Upload Protocol (BITS 1.5 Upload Protocol), as data: the request
//! packets a client sends with the `BITS_POST` method, the Ack packets a
//! server answers with, their headers, and BITS' error codes for uploads.
//! Shared by the upload client (`bits-transfer`) and the upload server
//! (`bits-server`), so both speak exactly the same words.
//!
//! Architecture invariant: no I/O here. Parsing takes header lookups and
//! returns values; building returns header lists.
//!
//! (skeleton: to be completed)
#![deny(missing_docs)]

/// The HTTP method of every packet.
pub const METHOD: &str = "BITS_POST";

/// The protocol GUID of "BITS 1.5 Upload Protocol".
pub const PROTOCOL_GUID: &str = "{7df0354d-249b-430f-820d-3d2a9bef4931}";
