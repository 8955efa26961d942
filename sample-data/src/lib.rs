//! Sample data for trying and measuring Shoal: TPC-H tables generated with `tpchgen` into
//! Parquet, and TPC-H's 22 queries.

pub mod tpch;
