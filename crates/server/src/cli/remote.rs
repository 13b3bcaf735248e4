//! `import-definitions --url` and `export-definitions --url`: the same commands against a
//! running broker's management HTTP API instead of its data directory. The broker then
//! does the import itself (the same reader and merge as offline) and applies it at once.
//!
//! The commands are synchronous, so the request runs on a small runtime of its own, on a
//! scoped thread: that works whether or not the caller already runs inside tokio.

use std::future::Future;

use clap::Args;
use ferrymq_admin::client::{ApiClient, ApiResponse, Method};
use ferrymq_auth::edit::SourceFormat;
use serde_json::Value;

use super::definitions::{Failure, Io, print};

/// Where the management API is, and who logs in.
#[derive(Debug, Clone, Default, Args)]
pub struct RemoteArgs {
    /// Use the management HTTP API of a running broker (e.g. http://127.0.0.1:15672)
    /// instead of the data directory. The user needs the administrator tag.
    #[arg(long, value_name = "URL", help_heading = "Management API")]
    pub url: Option<String>,
    /// User name for --url [default: guest].
    #[arg(
        long,
        value_name = "USER",
        env = "FERRYMQ_MANAGEMENT_USER",
        help_heading = "Management API"
    )]
    pub user: Option<String>,
    /// Password for --url [default: guest]. Visible in the process list: prefer the
    /// environment variable.
    #[arg(
        long,
        value_name = "PASSWORD",
        env = "FERRYMQ_MANAGEMENT_PASSWORD",
        hide_env_values = true,
        help_heading = "Management API"
    )]
    pub password: Option<String>,
}

impl RemoteArgs {
    fn client(&self, url: &str) -> Result<ApiClient, Failure> {
        // RabbitMQ's rabbitmqadmin has the same defaults: the built-in guest, on loopback.
        let user = self.user.as_deref().unwrap_or("guest");
        let password = self.password.as_deref().unwrap_or("guest");
        ApiClient::new(url, Some((user, password))).map_err(|e| e.to_string())
    }

    /// `POST /api/definitions` with `text`; prints the warnings and the counts.
    pub(crate) fn import(
        &self,
        url: &str,
        name: &str,
        text: String,
        format: Option<SourceFormat>,
        io: &mut Io<'_>,
    ) -> Result<(), Failure> {
        let client = self.client(url)?;
        let query = match format {
            None => "",
            Some(SourceFormat::Ferrymq) => "?format=ferrymq",
            Some(SourceFormat::Rabbitmq) => "?format=rabbitmq",
        };
        let path = format!("/api/definitions{query}");
        let response =
            block_on(client.send_json(Method::POST, &path, text))?.map_err(|e| e.to_string())?;
        let answer = success(&response).map_err(|e| format!("{name}: {e}"))?;
        let answer: Value = serde_json::from_slice(&answer.body)
            .map_err(|e| format!("the management API answered something else than JSON: {e}"))?;
        let warnings = answer["warnings"].as_array().cloned().unwrap_or_default();
        for warning in &warnings {
            let _ = writeln!(io.err, "warning: {}", warning.as_str().unwrap_or_default());
        }
        let counts = |key: &str| {
            let part = &answer[key];
            format!(
                "{} ({} added, {} replaced)",
                part["total"], part["added"], part["replaced"]
            )
        };
        print(
            io.out,
            format_args!(
                "imported {name} ({}) through {url}:\n  users: {}\n  vhosts: {}\n  permissions: {}\n  warnings: {}",
                answer["format"].as_str().unwrap_or("definitions"),
                counts("users"),
                counts("vhosts"),
                counts("permissions"),
                warnings.len(),
            ),
        )
    }

    /// `GET /api/definitions`: the text and its (users, vhosts, permissions) counts.
    pub(crate) fn export(&self, url: &str) -> Result<(String, (usize, usize, usize)), Failure> {
        let client = self.client(url)?;
        let response = block_on(client.get("/api/definitions"))?.map_err(|e| e.to_string())?;
        let response = success(&response)?;
        let document: Value = serde_json::from_slice(&response.body)
            .map_err(|e| format!("the management API answered something else than JSON: {e}"))?;
        let count = |key: &str| document[key].as_array().map_or(0, Vec::len);
        let counts = (count("users"), count("vhosts"), count("permissions"));
        Ok((response.text(), counts))
    }
}

/// The response when it is a success, else its status and reason as the failure.
fn success(response: &ApiResponse) -> Result<&ApiResponse, Failure> {
    match response.status {
        200..=299 => Ok(response),
        401 => Err(format!(
            "the management API refused the login (401): {}; give --user and --password",
            response.reason()
        )),
        status => Err(format!(
            "the management API answered {status}: {}",
            response.reason()
        )),
    }
}

/// Runs `future` to completion on a current-thread runtime of its own. The CLI commands run
/// outside any runtime (`main` starts one only for `serve` and `bench`), so no thread is
/// needed to keep this runtime apart from another.
fn block_on<T>(future: impl Future<Output = T>) -> Result<T, Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the HTTP client: {e}"))?;
    Ok(runtime.block_on(future))
}
