//! End-to-end tests: the real `bits` and `bitsd` programs, a real HTTP
//! server on 127.0.0.1, real files. Each test has its own BITS_HOME, so tests
//! run in parallel and leave nothing behind.

mod support;

mod cli;
mod compat;
mod crash;
mod credentials;
mod download;
mod https;
mod integrity;
mod lifecycle;
mod liveness;
mod network;
mod notify;
mod policy;
mod powerloss;
mod races;
mod remote;
mod routes;
mod scheduling;
mod secrets;
mod system;
mod terminal;
mod upload;
mod watch;
