//! Harness for the workspace-level suites (being written).
