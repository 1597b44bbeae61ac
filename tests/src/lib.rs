//! Support for the end-to-end suites.
