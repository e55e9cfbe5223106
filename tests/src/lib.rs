//! Shared helpers live in the integration binary; this crate is only its host.
