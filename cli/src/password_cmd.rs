//! `shoal password-hash`: a line for the coordinators' password file, `user:argon2-hash`, from
//! a password read on standard input (or asked for on the terminal).

use std::io::{BufRead, IsTerminal};

use crate::Failure;

#[derive(Debug, clap::Args)]
pub struct PasswordHashArgs {
    /// The user the line is for.
    #[arg(long)]
    user: String,
}

pub fn run(args: PasswordHashArgs) -> Result<(), Failure> {
    if args.user.is_empty() || args.user.contains(':') {
        return Err(Failure::usage("--user must be non-empty and without ':'"));
    }
    let password = if std::io::stdin().is_terminal() {
        rpassword::prompt_password("Password: ")
            .map_err(|e| Failure::usage(format!("cannot read the password: {e}")))?
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| Failure::usage(format!("cannot read the password: {e}")))?;
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    if password.is_empty() {
        return Err(Failure::usage("the password is empty"));
    }
    let hash = shoal_coordinator::auth::hash_password(&password)
        .map_err(|e| Failure::runtime(e.into()))?;
    println!("{}:{hash}", args.user);
    Ok(())
}
