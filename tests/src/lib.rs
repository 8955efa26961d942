//! Cluster test harness for end-to-end tests of Shoal.
