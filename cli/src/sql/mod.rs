//! `shoal sql`: a SQL shell for any coordinator. Runs `--execute` or `--file` and exits, or
//! reads statements interactively; follows a running query to the next server when the one in
//! use dies.

pub(crate) mod client;
mod csv;
mod output;
mod segments;
mod shell;

use std::io::IsTerminal;
use std::time::Instant;

use client::{Session, SqlError, StatementClient};
use output::{Format, Printer};
use segments::Decoded;
use shoal_proto::client::QueryResults;

use crate::Failure;

#[derive(Debug, clap::Args)]
pub struct SqlArgs {
    /// Coordinators' client URLs, comma separated; the next is used when one cannot be reached.
    #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:8080")]
    server: Vec<String>,
    #[arg(long, env = "USER", default_value = "shoal")]
    user: String,
    #[arg(long)]
    catalog: Option<String>,
    #[arg(long)]
    schema: Option<String>,
    /// Run these statements (separated by `;`) and exit.
    #[arg(long, conflicts_with = "file")]
    execute: Option<String>,
    /// Run the statements of this file and exit.
    #[arg(long, short = 'f')]
    file: Option<std::path::PathBuf>,
    #[arg(long, value_enum, default_value = "table")]
    output_format: Format,
    /// Authenticate with a password: taken from TRINO_PASSWORD, else asked for on the terminal.
    #[arg(long)]
    password: bool,
    /// Trust only the certificate authorities in this PEM file for https:// servers (default:
    /// the system's).
    #[arg(long)]
    ca_file: Option<std::path::PathBuf>,
    /// The result encodings of Trino's spooling protocol to ask for, in order of preference
    /// (json+lz4, json+zstd, json); `none` reads rows from plain `data` arrays.
    #[arg(long, default_value = client::DEFAULT_ENCODING)]
    encoding: String,
}

/// The password for `--password`: TRINO_PASSWORD, else asked for on the terminal.
fn read_password() -> Result<String, Failure> {
    if let Ok(password) = std::env::var("TRINO_PASSWORD") {
        return Ok(password);
    }
    rpassword::prompt_password("Password: ")
        .map_err(|e| Failure::usage(format!("cannot read a password from the terminal: {e}")))
}

pub fn run(args: SqlArgs) -> Result<(), Failure> {
    if args.server.is_empty() || args.server.iter().any(|s| !s.starts_with("http")) {
        return Err(Failure::usage("--server takes http:// or https:// URLs"));
    }
    let password = if args.password {
        Some(read_password()?)
    } else {
        None
    };
    let runtime = tokio::runtime::Runtime::new().map_err(|e| Failure::runtime(e.into()))?;
    let http = crate::http::http_client(args.ca_file.as_deref()).map_err(Failure::usage)?;
    let session = Session {
        user: args.user.clone(),
        catalog: args.catalog.clone(),
        schema: args.schema.clone(),
    };
    let mut client = StatementClient::new(args.server.clone(), session, http, password.as_deref());
    client.encoding = (args.encoding != "none").then(|| args.encoding.clone());
    let script = match (&args.execute, &args.file) {
        (Some(sql), _) => Some(sql.clone()),
        (None, Some(path)) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| Failure::usage(format!("cannot read {}: {e}", path.display())))?,
        ),
        (None, None) => None,
    };
    match script {
        Some(script) => runtime.block_on(run_script(client, &script, args.output_format)),
        None => shell::interactive(runtime.handle(), client, args.output_format),
    }
}

/// The interactive shell on `servers`, in catalog `shoal` and `schema` (for `shoal local`).
pub fn shell_on(
    handle: &tokio::runtime::Handle,
    servers: Vec<String>,
    schema: Option<String>,
) -> Result<(), Failure> {
    let session = Session {
        user: std::env::var("USER").unwrap_or_else(|_| "shoal".into()),
        catalog: Some("shoal".into()),
        schema,
    };
    let http = crate::http::http_client(None).map_err(Failure::usage)?;
    shell::interactive(
        handle,
        StatementClient::new(servers, session, http, None),
        Format::Table,
    )
}

/// Split `text` into statements at `;` outside quotes and comments.
pub(crate) fn statements(text: &str) -> (Vec<String>, String) {
    let mut done = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                current.push(c);
            }
            (Some(_), c) => current.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                current.push(c);
            }
            (None, '-') if chars.peek() == Some(&'-') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        current.push('\n');
                        break;
                    }
                }
            }
            (None, ';') => {
                let statement = current.trim().to_string();
                if !statement.is_empty() {
                    done.push(statement);
                }
                current.clear();
            }
            (None, c) => current.push(c),
        }
    }
    (done, current)
}

async fn run_script(
    mut client: StatementClient,
    script: &str,
    format: Format,
) -> Result<(), Failure> {
    let (mut statements, rest) = statements(script);
    if !rest.trim().is_empty() {
        statements.push(rest.trim().to_string());
    }
    for sql in statements {
        run_one(&mut client, &sql, format, interrupted()).await?;
    }
    Ok(())
}

/// Completes on Ctrl-C (SIGINT): the running query is cancelled on the server.
pub(crate) async fn interrupted() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await
    }
}

/// Run one statement, printing its result; the failure says which exit code it means.
pub(crate) async fn run_one(
    client: &mut StatementClient,
    sql: &str,
    format: Format,
    cancelled: impl std::future::Future<Output = ()>,
) -> Result<(), Failure> {
    let stdout = std::io::stdout();
    let printer = std::cell::RefCell::new(Printer::new(
        format,
        std::io::BufWriter::with_capacity(1 << 16, stdout.lock()),
    ));
    let progress = std::io::stderr().is_terminal();
    let started = Instant::now();
    let write_error = std::cell::RefCell::new(None);
    let outcome = client
        .execute(
            sql,
            format == Format::Csv,
            |results: &QueryResults| {
                if let Err(e) = print_columns(&mut printer.borrow_mut(), results) {
                    write_error.borrow_mut().get_or_insert(e);
                }
                if progress {
                    show_progress(results, started);
                }
            },
            |decoded: &Decoded| {
                let written = match decoded {
                    Decoded::Rows(rows) => printer.borrow_mut().rows(rows),
                    Decoded::Csv(text) => printer.borrow_mut().csv_lines(text),
                };
                if let Err(e) = written {
                    write_error.borrow_mut().get_or_insert(e);
                }
            },
            cancelled,
        )
        .await;
    let mut printer = printer.into_inner();
    let write_error = write_error.into_inner();
    if progress {
        eprint!("\r\x1b[2K");
    }
    let finished = printer.finish();
    if let Some(e) = write_error.or(finished.err()) {
        return Err(Failure::runtime(e.into()));
    }
    match outcome {
        Ok(results) => {
            match (&results.update_type, results.update_count) {
                (Some(kind), Some(count)) => {
                    eprintln!("{kind}: {count} row{}", if count == 1 { "" } else { "s" })
                }
                (Some(kind), None) => eprintln!("{kind}"),
                _ => {}
            }
            Ok(())
        }
        Err(SqlError::Connection(message)) => Err(Failure::usage(message)),
        Err(SqlError::Cancelled) => Err(Failure::runtime(anyhow::anyhow!("query cancelled"))),
        Err(other) => Err(Failure::runtime(other.into())),
    }
}

fn print_columns<W: std::io::Write>(
    printer: &mut Printer<W>,
    results: &QueryResults,
) -> std::io::Result<()> {
    if results.update_type.is_some() {
        return Ok(());
    }
    if let Some(columns) = &results.columns {
        printer.columns(columns)?;
    }
    Ok(())
}

fn show_progress(results: &QueryResults, started: Instant) {
    eprint!(
        "\r\x1b[2K{} {} rows {:.1}s",
        results.stats.state,
        results.stats.processed_rows,
        started.elapsed().as_secs_f64()
    );
}

#[cfg(test)]
mod tests {
    use super::statements;

    #[test]
    fn statements_split_at_semicolons_outside_quotes_and_comments() {
        let (done, rest) = statements("select ';' as a; -- c; d\nselect 2;\nselect");
        assert_eq!(done, vec!["select ';' as a", "select 2"]);
        assert_eq!(rest.trim(), "select");
    }
}
