//! The interactive shell: line editing and history (rustyline), statements over several lines
//! until `;`, Ctrl-C cancels the running query (not the shell), Ctrl-D leaves.

use rustyline::error::ReadlineError;
use rustyline::DefaultEditor;

use super::client::StatementClient;
use super::output::Format;
use super::{interrupted, run_one, statements};
use crate::Failure;

fn history_file() -> Option<std::path::PathBuf> {
    std::env::var_os("HOME").map(|home| std::path::PathBuf::from(home).join(".shoal_history"))
}

fn prompt(client: &StatementClient, continuing: bool) -> String {
    if continuing {
        return "     -> ".into();
    }
    match &client.session.schema {
        Some(schema) => format!("shoal:{schema}> "),
        None => "shoal> ".into(),
    }
}

pub fn interactive(
    runtime: &tokio::runtime::Handle,
    mut client: StatementClient,
    format: Format,
) -> Result<(), Failure> {
    let mut editor =
        DefaultEditor::new().map_err(|e| Failure::usage(format!("no terminal: {e}")))?;
    let history = history_file();
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    eprintln!(
        "shoal sql on {} (end statements with ';', Ctrl-D to leave)",
        client.server()
    );
    let mut pending = String::new();
    loop {
        let line = match editor.readline(&prompt(&client, !pending.trim().is_empty())) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => {
                pending.clear();
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(Failure::runtime(e.into())),
        };
        pending.push_str(&line);
        pending.push('\n');
        let (ready, rest) = statements(&pending);
        if ready.is_empty() {
            if matches!(
                pending.trim().to_ascii_lowercase().as_str(),
                "quit" | "exit"
            ) {
                break;
            }
            continue;
        }
        let _ = editor.add_history_entry(pending.trim());
        pending = rest;
        for sql in ready {
            if let Err(failure) =
                runtime.block_on(run_one(&mut client, &sql, format, interrupted()))
            {
                eprintln!("{failure}");
            }
        }
    }
    if let Some(path) = &history {
        let _ = editor.save_history(path);
    }
    Ok(())
}
