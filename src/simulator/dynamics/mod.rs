//! Dynamics 365 / Dataverse simulator (work in progress).
pub mod cert;
