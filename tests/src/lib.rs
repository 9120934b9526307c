//! Support for the workspace-level integration tests.
