//! TPC-H: data generated with `tpchgen` into one Parquet file per table, and the 22 queries.

use std::fs::File;
use std::path::Path;

use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::errors::ParquetError;
use tpchgen::generators::{
    CustomerGenerator, LineItemGenerator, NationGenerator, OrderGenerator, PartGenerator,
    PartSuppGenerator, RegionGenerator, SupplierGenerator,
};
use tpchgen_arrow::{
    CustomerArrow, LineItemArrow, NationArrow, OrderArrow, PartArrow, PartSuppArrow,
    RecordBatchIterator, RegionArrow, SupplierArrow,
};

/// Why sample data could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error("cannot write sample data: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot write sample data as Parquet: {0}")]
    Parquet(#[from] ParquetError),
}

/// The eight tables, in dependency order.
pub const TABLES: [&str; 8] = [
    "region", "nation", "supplier", "customer", "part", "partsupp", "orders", "lineitem",
];

/// The 22 queries as (name, SQL).
pub const QUERIES: [(&str, &str); 22] = [
    ("q01", include_str!("../tpch/q01.sql")),
    ("q02", include_str!("../tpch/q02.sql")),
    ("q03", include_str!("../tpch/q03.sql")),
    ("q04", include_str!("../tpch/q04.sql")),
    ("q05", include_str!("../tpch/q05.sql")),
    ("q06", include_str!("../tpch/q06.sql")),
    ("q07", include_str!("../tpch/q07.sql")),
    ("q08", include_str!("../tpch/q08.sql")),
    ("q09", include_str!("../tpch/q09.sql")),
    ("q10", include_str!("../tpch/q10.sql")),
    ("q11", include_str!("../tpch/q11.sql")),
    ("q12", include_str!("../tpch/q12.sql")),
    ("q13", include_str!("../tpch/q13.sql")),
    ("q14", include_str!("../tpch/q14.sql")),
    ("q15", include_str!("../tpch/q15.sql")),
    ("q16", include_str!("../tpch/q16.sql")),
    ("q17", include_str!("../tpch/q17.sql")),
    ("q18", include_str!("../tpch/q18.sql")),
    ("q19", include_str!("../tpch/q19.sql")),
    ("q20", include_str!("../tpch/q20.sql")),
    ("q21", include_str!("../tpch/q21.sql")),
    ("q22", include_str!("../tpch/q22.sql")),
];

fn write(
    dir: &Path,
    table: &str,
    mut batches: impl RecordBatchIterator,
) -> Result<(), SampleError> {
    let table_dir = dir.join(table);
    std::fs::create_dir_all(&table_dir)?;
    let file = File::create(table_dir.join("part-0.parquet"))?;
    let mut writer = ArrowWriter::try_new(file, batches.schema().clone(), None)?;
    for batch in &mut batches {
        writer.write(&batch)?;
    }
    writer.close()?;
    Ok(())
}

/// Generate every table at `scale_factor` under `dir/<table>/part-0.parquet`.
pub fn generate(dir: &Path, scale_factor: f64) -> Result<(), SampleError> {
    write(
        dir,
        "region",
        RegionArrow::new(RegionGenerator::new(scale_factor, 1, 1)),
    )?;
    write(
        dir,
        "nation",
        NationArrow::new(NationGenerator::new(scale_factor, 1, 1)),
    )?;
    write(
        dir,
        "supplier",
        SupplierArrow::new(SupplierGenerator::new(scale_factor, 1, 1)),
    )?;
    write(
        dir,
        "customer",
        CustomerArrow::new(CustomerGenerator::new(scale_factor, 1, 1)),
    )?;
    write(
        dir,
        "part",
        PartArrow::new(PartGenerator::new(scale_factor, 1, 1)),
    )?;
    write(
        dir,
        "partsupp",
        PartSuppArrow::new(PartSuppGenerator::new(scale_factor, 1, 1)),
    )?;
    write(
        dir,
        "orders",
        OrderArrow::new(OrderGenerator::new(scale_factor, 1, 1)),
    )?;
    write(
        dir,
        "lineitem",
        LineItemArrow::new(LineItemGenerator::new(scale_factor, 1, 1)),
    )?;
    Ok(())
}
