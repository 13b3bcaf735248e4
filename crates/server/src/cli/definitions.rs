//! The commands that manage the internal access-control database
//! (`<data_dir>/definitions.json`): `users`, `vhosts`, `permissions`, `import-definitions`
//! and `export-definitions`.
//!
//! Every change is one read-modify-write under the file's lock ([`JsonDocument::update`]),
//! validated with `Definitions::validate` before it is saved, so the commands are safe while
//! the broker runs (it applies the change within two seconds) and never leave an
//! inconsistent file behind. Results go to stdout, errors to stderr as `ferrymq: error: …`
//! with exit code 1. Passwords are hashed with argon2id before the lock is taken and are
//! never printed; neither are hashes, except in `export-definitions`.
//!
//! [`JsonDocument::update`]: ferrymq_store::JsonDocument::update

use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use ferrymq_auth::definitions::export;
use ferrymq_auth::{
    Definitions, PasswordHash, Permissions, Tag, TopicRules, UserRecord, VhostRecord,
};

use ferrymq_admin::definitions::{ChangeError, Database};
use ferrymq_auth::edit::{self, EditError, SourceFormat};

use super::remote::RemoteArgs;
use crate::config::{self, DEFAULT_DATA_DIR};

/// Where the database is: `--data-dir`, else the config file's `server.data_dir`, else
/// `./data` (the same rule as `serve`).
#[derive(Debug, Clone, Default, Args)]
pub struct DatabaseArgs {
    /// Data directory holding definitions.json [default: server.data_dir of --config, else
    /// ./data].
    #[arg(
        long,
        value_name = "DIR",
        env = "FERRYMQ_DATA_DIR",
        global = true,
        help_heading = "Database"
    )]
    pub data_dir: Option<PathBuf>,

    /// Config file whose server.data_dir to use (when --data-dir is not given).
    #[arg(
        long,
        value_name = "FILE",
        env = "FERRYMQ_CONFIG",
        global = true,
        help_heading = "Database"
    )]
    pub config: Option<PathBuf>,
}

/// `ferrymq users …`
#[derive(Debug, Args)]
pub struct UsersArgs {
    #[command(subcommand)]
    pub command: UsersCommand,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

/// The `users` subcommands.
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Add a user (argon2id password hash). On a database without vhosts, also creates the
    /// default vhost "/". The user may do nothing until `ferrymq permissions set`.
    Add(AddUserArgs),
    /// Delete a user and its permissions.
    Delete {
        /// The user name.
        name: String,
    },
    /// List the users: name, tags, connection limit, password hash algorithm.
    List,
    /// Replace a user's password.
    SetPassword {
        /// The user name.
        name: String,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Replace a user's tags (comma-separated; "" or "none" for no tag).
    SetTags {
        /// The user name.
        name: String,
        /// Tags such as administrator,management,monitoring,policymaker or custom ones.
        tags: String,
    },
}

/// `ferrymq users add`
#[derive(Debug, Args)]
pub struct AddUserArgs {
    /// The user name (no ':', which separates vhost:user).
    pub name: String,
    #[command(flatten)]
    pub password: PasswordArgs,
    /// Management tags, comma-separated (administrator, management, monitoring,
    /// policymaker, or custom ones). They grant nothing on topics.
    #[arg(long, value_name = "TAGS")]
    pub tags: Option<String>,
    /// Most concurrent connections of this user (0: may not connect) [default: no limit].
    #[arg(long, value_name = "N")]
    pub max_connections: Option<u32>,
}

/// Where a password comes from. Without a flag it is read from standard input.
#[derive(Debug, Clone, Default, Args)]
#[group(multiple = false)]
pub struct PasswordArgs {
    /// The password. It is then visible in the process list and the shell history: prefer
    /// --password-stdin.
    #[arg(long, value_name = "PASSWORD")]
    pub password: Option<String>,
    /// Read the password from the first line of standard input (the default).
    #[arg(long)]
    pub password_stdin: bool,
    /// No password: the user can log in only with a TLS client certificate.
    #[arg(long)]
    pub no_password: bool,
}

/// `ferrymq vhosts …`
#[derive(Debug, Args)]
pub struct VhostsArgs {
    #[command(subcommand)]
    pub command: VhostsCommand,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

/// The `vhosts` subcommands.
#[derive(Debug, Subcommand)]
pub enum VhostsCommand {
    /// Add a virtual host.
    Add {
        /// The vhost name.
        name: String,
        /// Free text for operators.
        #[arg(long, value_name = "TEXT")]
        description: Option<String>,
        /// Most concurrent connections in this vhost (0: closed) [default: no limit].
        #[arg(long, value_name = "N")]
        max_connections: Option<u32>,
    },
    /// Delete a virtual host and every permission in it.
    Delete {
        /// The vhost name.
        name: String,
    },
    /// List the virtual hosts.
    List,
}

/// `ferrymq permissions …`
#[derive(Debug, Args)]
pub struct PermissionsArgs {
    #[command(subcommand)]
    pub command: PermissionsCommand,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

/// The `permissions` subcommands.
#[derive(Debug, Subcommand)]
pub enum PermissionsCommand {
    /// Set (replace) what USER may do in a vhost. Filters may use {username}, {client_id}
    /// and {vhost}; deny wins over allow. See docs/access-control.md.
    Set(SetPermissionsArgs),
    /// Remove USER's permissions in a vhost: it can no longer connect there.
    Clear {
        /// The vhost.
        #[arg(long, short = 'p', value_name = "VHOST", default_value = "/")]
        vhost: String,
        /// The user name.
        user: String,
    },
    /// List permissions, of every vhost or of one.
    List {
        /// Only this vhost.
        #[arg(long, short = 'p', value_name = "VHOST")]
        vhost: Option<String>,
    },
}

/// `ferrymq permissions set`
#[derive(Debug, Args)]
pub struct SetPermissionsArgs {
    /// The vhost.
    #[arg(long, short = 'p', value_name = "VHOST", default_value = "/")]
    pub vhost: String,
    /// The user name.
    pub user: String,
    /// A topic filter the user may publish to; repeat for several.
    #[arg(long, value_name = "FILTER")]
    pub publish: Vec<String>,
    /// A topic filter the user may subscribe to (and everything it contains); repeat.
    #[arg(long, value_name = "FILTER")]
    pub subscribe: Vec<String>,
    /// Topics the user may not publish to, even when an allow filter matches; repeat.
    #[arg(long, value_name = "FILTER")]
    pub deny_publish: Vec<String>,
    /// Topics the user may not receive: a subscription that overlaps one is refused; repeat.
    #[arg(long, value_name = "FILTER")]
    pub deny_subscribe: Vec<String>,
    /// May subscribe to $SYS/# (read-only broker statistics).
    #[arg(long)]
    pub read_sys: bool,
}

/// `ferrymq import-definitions`
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The file to import ("-": standard input).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The file's format; auto tells them apart.
    #[arg(long, value_enum, default_value_t = FormatArg::Auto)]
    pub format: FormatArg,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

/// `--format` of `import-definitions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// FerryMQ's if it has "ferrymq_definitions", RabbitMQ's if it has "rabbit_version".
    Auto,
    /// What `ferrymq export-definitions` writes.
    Ferrymq,
    /// A RabbitMQ definitions export (rabbitmqctl export_definitions).
    Rabbitmq,
}

/// `ferrymq export-definitions`
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Write to this file (created with mode 0600: it holds password hashes) instead of
    /// standard output ("-").
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

/// The terminals of a command.
pub struct Io<'a> {
    /// Passwords and `import-definitions -` read from here.
    pub input: &'a mut dyn BufRead,
    /// Results.
    pub out: &'a mut dyn Write,
    /// Warnings and errors.
    pub err: &'a mut dyn Write,
}

/// A failed command's message (printed after `ferrymq: error: `).
pub(crate) type Failure = String;

/// Prints `result`'s error and turns it into the exit code.
fn finish(result: Result<(), Failure>, err: &mut dyn Write) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            // Nobody is left to tell when stderr fails; the exit code still says it.
            let _ = writeln!(err, "ferrymq: error: {message}");
            ExitCode::FAILURE
        }
    }
}

impl DatabaseArgs {
    /// The database these flags point at.
    pub fn database(&self) -> Result<Database, Failure> {
        let dir = match (&self.data_dir, &self.config) {
            (Some(dir), _) => dir.clone(),
            (None, Some(file)) => {
                config::load_file(file)
                    .map_err(|problems| format!("{problems}\ninvalid configuration"))?
                    .data_dir
            }
            (None, None) => PathBuf::from(DEFAULT_DATA_DIR),
        };
        Ok(Database::in_data_dir(&dir))
    }
}

/// One validated read-modify-write. `edit` returns `Ok(None)` when there is nothing to save.
fn change<R>(
    database: &Database,
    edit: impl FnOnce(&mut Definitions) -> Result<Option<R>, EditError>,
) -> Result<Option<R>, Failure> {
    match database.change(edit) {
        Ok(outcome) => Ok(outcome.map(|(result, _)| result)),
        Err(ChangeError::Store(error)) => Err(error.to_string()),
        Err(ChangeError::Edit(error)) => Err(format!("{}: {error}", database.path().display())),
    }
}

fn load(database: &Database) -> Result<Definitions, Failure> {
    database
        .load()
        .map(|(definitions, _)| definitions)
        .map_err(|error| error.to_string())
}

pub(crate) fn print(out: &mut dyn Write, text: std::fmt::Arguments<'_>) -> Result<(), Failure> {
    writeln!(out, "{text}").map_err(|e| format!("cannot write the output: {e}"))
}

/// Reads a password from the first line of `input` (prompting on a terminal); refuses an
/// empty one. Shared with `hash-password`.
pub(crate) fn read_password_line(
    input: &mut dyn BufRead,
    err: &mut dyn Write,
) -> Result<String, Failure> {
    if std::io::stdin().is_terminal() {
        // No echo suppression without a terminal library; say so.
        let _ = write!(err, "Password (will be echoed): ");
        let _ = err.flush();
    }
    let mut line = String::new();
    input
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password: {e}"))?;
    let trimmed = line.strip_suffix('\n').unwrap_or(&line);
    let password = trimmed.strip_suffix('\r').unwrap_or(trimmed);
    if password.is_empty() {
        return Err("the password is empty".to_owned());
    }
    Ok(password.to_owned())
}

impl PasswordArgs {
    /// The hash to store (argon2id; this takes a moment on purpose).
    fn hash(&self, io: &mut Io<'_>) -> Result<PasswordHash, Failure> {
        if self.no_password {
            return Ok(PasswordHash::None);
        }
        let password = match &self.password {
            Some(password) if password.is_empty() => {
                return Err("the password is empty".to_owned());
            }
            Some(password) => password.clone(),
            None => read_password_line(io.input, io.err)?,
        };
        Ok(PasswordHash::argon2id(&password))
    }
}

impl UsersArgs {
    /// Runs the `users` subcommand.
    pub fn run(self, io: &mut Io<'_>) -> ExitCode {
        let result = self.execute(io);
        finish(result, io.err)
    }

    fn execute(self, io: &mut Io<'_>) -> Result<(), Failure> {
        let database = self.database.database()?;
        let path = database.path().display().to_string();
        match self.command {
            UsersCommand::Add(args) => {
                if load(&database)?.user(&args.name).is_some() {
                    // Checked first so that nobody types a password in vain.
                    return Err(format!("{path}: {}", EditError::UserExists(args.name)));
                }
                let user = UserRecord {
                    name: args.name.clone(),
                    password_hash: args.password.hash(io)?,
                    tags: edit::dedup(Tag::parse_list(args.tags.as_deref().unwrap_or(""))),
                    max_connections: args.max_connections,
                };
                let created_default =
                    change(&database, |defs| edit::add_user(defs, user).map(Some))?;
                print(io.out, format_args!("added user {:?} to {path}", args.name))?;
                if created_default == Some(true) {
                    print(
                        io.out,
                        format_args!("created the default vhost \"/\" (the database had none)"),
                    )?;
                }
            }
            UsersCommand::Delete { name } => {
                let removed = change(&database, |defs| edit::delete_user(defs, &name).map(Some))?;
                let removed = removed.unwrap_or_default();
                print(
                    io.out,
                    format_args!(
                        "deleted user {name:?} and its permissions in {removed} vhost(s) from {path}"
                    ),
                )?;
            }
            UsersCommand::List => {
                let definitions = load(&database)?;
                let rows = definitions
                    .users
                    .iter()
                    .map(|user| {
                        vec![
                            user.name.clone(),
                            join(user.tags.iter().map(Tag::as_str)),
                            limit(user.max_connections),
                            user.password_hash.algorithm().to_owned(),
                        ]
                    })
                    .collect();
                table(
                    io.out,
                    &["name", "tags", "max_connections", "password"],
                    rows,
                )?;
            }
            UsersCommand::SetPassword { name, password } => {
                if load(&database)?.user(&name).is_none() {
                    // Checked first so that nobody types a password in vain.
                    return Err(format!("{path}: {}", EditError::NoSuchUser(name)));
                }
                let hash = password.hash(io)?;
                change(&database, |defs| {
                    edit::set_password(defs, &name, hash).map(Some)
                })?;
                print(
                    io.out,
                    format_args!("changed the password of user {name:?} in {path}"),
                )?;
            }
            UsersCommand::SetTags { name, tags } => {
                let tags = Tag::parse_list(&tags);
                let shown = match join(tags.iter().map(Tag::as_str)).as_str() {
                    "-" => "none".to_owned(),
                    shown => shown.to_owned(),
                };
                change(&database, |defs| {
                    edit::set_tags(defs, &name, tags).map(Some)
                })?;
                print(
                    io.out,
                    format_args!("set the tags of user {name:?} to {shown} in {path}"),
                )?;
            }
        }
        Ok(())
    }
}

impl VhostsArgs {
    /// Runs the `vhosts` subcommand.
    pub fn run(self, io: &mut Io<'_>) -> ExitCode {
        let result = self.execute(io);
        finish(result, io.err)
    }

    fn execute(self, io: &mut Io<'_>) -> Result<(), Failure> {
        let database = self.database.database()?;
        let path = database.path().display().to_string();
        match self.command {
            VhostsCommand::Add {
                name,
                description,
                max_connections,
            } => {
                let vhost = VhostRecord {
                    name: name.clone(),
                    description: description.unwrap_or_default(),
                    max_connections,
                };
                change(&database, |defs| edit::add_vhost(defs, vhost).map(Some))?;
                print(io.out, format_args!("added vhost {name:?} to {path}"))?;
            }
            VhostsCommand::Delete { name } => {
                let removed = change(&database, |defs| edit::delete_vhost(defs, &name).map(Some))?;
                let removed = removed.unwrap_or_default();
                print(
                    io.out,
                    format_args!(
                        "deleted vhost {name:?} and {removed} permission record(s) from {path}"
                    ),
                )?;
            }
            VhostsCommand::List => {
                let definitions = load(&database)?;
                let rows = definitions
                    .vhosts
                    .iter()
                    .map(|vhost| {
                        vec![
                            vhost.name.clone(),
                            limit(vhost.max_connections),
                            vhost.description.clone(),
                        ]
                    })
                    .collect();
                table(io.out, &["name", "max_connections", "description"], rows)?;
            }
        }
        Ok(())
    }
}

impl PermissionsArgs {
    /// Runs the `permissions` subcommand.
    pub fn run(self, io: &mut Io<'_>) -> ExitCode {
        let result = self.execute(io);
        finish(result, io.err)
    }

    fn execute(self, io: &mut Io<'_>) -> Result<(), Failure> {
        let database = self.database.database()?;
        let path = database.path().display().to_string();
        match self.command {
            PermissionsCommand::Set(args) => {
                let permissions = Permissions {
                    publish: TopicRules {
                        allow: args.publish,
                        deny: args.deny_publish,
                    },
                    subscribe: TopicRules {
                        allow: args.subscribe,
                        deny: args.deny_subscribe,
                    },
                    read_sys: args.read_sys,
                };
                let (user, vhost) = (args.user, args.vhost);
                let nothing = permissions.publish.allow.is_empty()
                    && permissions.subscribe.allow.is_empty()
                    && !permissions.read_sys;
                change(&database, |defs| {
                    edit::set_permissions(defs, &user, &vhost, permissions).map(Some)
                })?;
                print(
                    io.out,
                    format_args!(
                        "set the permissions of user {user:?} in vhost {vhost:?} in {path}"
                    ),
                )?;
                if nothing {
                    print(
                        io.out,
                        format_args!(
                            "note: no --publish, --subscribe or --read-sys: the user may connect to {vhost:?} but do nothing there"
                        ),
                    )?;
                }
            }
            PermissionsCommand::Clear { vhost, user } => {
                let cleared = change(&database, |defs| {
                    Ok(edit::clear_permissions(defs, &user, &vhost)?.then_some(()))
                })?;
                let message = match cleared {
                    Some(()) => "cleared the permissions of",
                    None => "nothing to clear: no permissions for",
                };
                print(
                    io.out,
                    format_args!("{message} user {user:?} in vhost {vhost:?} in {path}"),
                )?;
            }
            PermissionsCommand::List { vhost } => {
                let definitions = load(&database)?;
                let rows = definitions
                    .permissions
                    .iter()
                    .filter(|record| vhost.as_deref().is_none_or(|v| record.vhost == v))
                    .map(|record| {
                        let p = &record.permissions;
                        vec![
                            record.vhost.clone(),
                            record.user.clone(),
                            join(p.publish.allow.iter().map(String::as_str)),
                            join(p.subscribe.allow.iter().map(String::as_str)),
                            join(p.publish.deny.iter().map(String::as_str)),
                            join(p.subscribe.deny.iter().map(String::as_str)),
                            p.read_sys.to_string(),
                        ]
                    })
                    .collect();
                let headers = [
                    "vhost",
                    "user",
                    "publish",
                    "subscribe",
                    "deny_publish",
                    "deny_subscribe",
                    "read_sys",
                ];
                table(io.out, &headers, rows)?;
            }
        }
        Ok(())
    }
}

impl ImportArgs {
    /// Runs `import-definitions`.
    pub fn run(self, io: &mut Io<'_>) -> ExitCode {
        let result = self.execute(io);
        finish(result, io.err)
    }

    fn execute(self, io: &mut Io<'_>) -> Result<(), Failure> {
        let name = self.file.display().to_string();
        let mut text = String::new();
        if name == "-" {
            io.input
                .read_to_string(&mut text)
                .map_err(|e| format!("cannot read standard input: {e}"))?;
        } else {
            std::fs::File::open(&self.file)
                .and_then(|mut file| file.read_to_string(&mut text))
                .map_err(|e| format!("{name}: {e}"))?;
        }
        let format = match self.format {
            FormatArg::Auto => None,
            FormatArg::Ferrymq => Some(SourceFormat::Ferrymq),
            FormatArg::Rabbitmq => Some(SourceFormat::Rabbitmq),
        };
        if let Some(url) = &self.remote.url {
            return self.remote.import(url, &name, text, format, io);
        }
        let database = self.database.database()?;
        let imported = edit::read_import(&text, format).map_err(|e| format!("{name}: {e}"))?;
        for warning in &imported.warnings {
            let _ = writeln!(io.err, "warning: {warning}");
        }
        let incoming = imported.definitions;
        let (users, vhosts, permissions) = (
            incoming.users.len(),
            incoming.vhosts.len(),
            incoming.permissions.len(),
        );
        let counts = change(&database, |defs| Ok(Some(edit::merge(defs, incoming))))
            .map_err(|e| format!("{e}\n(importing {name})"))?
            .unwrap_or_default();
        print(
            io.out,
            format_args!(
                "imported {name} ({}) into {}:\n  users: {users} ({} added, {} replaced)\n  vhosts: {vhosts} ({} added, {} replaced)\n  permissions: {permissions} ({} added, {} replaced)\n  warnings: {}",
                imported.format,
                database.path().display(),
                counts.users_added,
                counts.users_replaced,
                counts.vhosts_added,
                counts.vhosts_replaced,
                counts.permissions_added,
                counts.permissions_replaced,
                imported.warnings.len(),
            ),
        )
    }
}

impl ExportArgs {
    /// Runs `export-definitions`.
    pub fn run(self, io: &mut Io<'_>) -> ExitCode {
        let result = self.execute(io);
        finish(result, io.err)
    }

    fn execute(self, io: &mut Io<'_>) -> Result<(), Failure> {
        let (text, counts) = match &self.remote.url {
            Some(url) => self.remote.export(url)?,
            None => {
                let database = self.database.database()?;
                let definitions = load(&database)?;
                let mut text = export(&definitions);
                text.push('\n');
                let counts = (
                    definitions.users.len(),
                    definitions.vhosts.len(),
                    definitions.permissions.len(),
                );
                (text, counts)
            }
        };
        match self.file.filter(|file| file.as_os_str() != "-") {
            None => io
                .out
                .write_all(text.as_bytes())
                .map_err(|e| format!("cannot write the output: {e}")),
            Some(file) => {
                write_private(&file, text.as_bytes())
                    .map_err(|e| format!("{}: {e}", file.display()))?;
                let _ = writeln!(
                    io.err,
                    "exported {} users, {} vhosts, {} permission records to {}",
                    counts.0,
                    counts.1,
                    counts.2,
                    file.display()
                );
                Ok(())
            }
        }
    }
}

/// Writes a file readable by its owner only (it holds password hashes).
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(bytes)
}

/// A list cell: comma-separated, `-` when empty.
fn join<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let joined = items.collect::<Vec<_>>().join(",");
    if joined.is_empty() {
        "-".to_owned()
    } else {
        joined
    }
}

fn limit(max: Option<u32>) -> String {
    max.map_or_else(|| "-".to_owned(), |n| n.to_string())
}

/// Left-aligned columns separated by two spaces; the header line first.
fn table(out: &mut dyn Write, headers: &[&str], rows: Vec<Vec<String>>) -> Result<(), Failure> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(&widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  "));
            }
        }
        print(out, format_args!("{line}"))?;
    }
    Ok(())
}
