use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use clap::CommandFactory;
use ferrymq_auth::{AuthConfig, Authenticator, UserConfig};

use super::*;

fn serve(args: &[&str]) -> ServeArgs {
    let argv = ["ferrymq", "serve"].iter().chain(args);
    match Cli::try_parse_from(argv).map(|cli| cli.command) {
        Ok(Some(Command::Serve(args))) => args,
        other => panic!("{args:?} gave {other:?}"),
    }
}

fn rejected(args: &[&str]) -> String {
    let argv = ["ferrymq"].iter().chain(args);
    match Cli::try_parse_from(argv) {
        Ok(cli) => panic!("{args:?} was accepted: {cli:?}"),
        Err(err) => err.to_string(),
    }
}

#[test]
fn the_command_definition_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn no_subcommand_is_allowed() {
    let cli = Cli::try_parse_from(["ferrymq"]).unwrap();
    assert!(cli.command.is_none());
}

#[test]
fn serve_flags_become_overrides() {
    assert_eq!(serve(&[]).overrides(), Overrides::default());

    let args = serve(&[
        "--config",
        "f.toml",
        "--mqtt-listen",
        "127.0.0.1:1884",
        "--mqtt-listen",
        "[::1]:1884,0.0.0.0:1",
        "--data-dir",
        "/srv/ferrymq",
        "--allow-anonymous",
        "--log-level",
        "debug",
        "--ws-listen",
        "127.0.0.1:8080",
        "--ws-listen",
        "[::1]:8080,127.0.0.1:8081",
        "--auth-http-url",
        "http://127.0.0.1:9000/auth",
        "--management-listen",
        "127.0.0.1:15999",
        "--management=false",
    ]);
    assert_eq!(args.config.as_deref(), Some(Path::new("f.toml")));
    assert_eq!(
        args.overrides(),
        Overrides {
            mqtt_listen: Some(vec![
                "127.0.0.1:1884".parse().unwrap(),
                "[::1]:1884".parse().unwrap(),
                "0.0.0.0:1".parse().unwrap(),
            ]),
            data_dir: Some("/srv/ferrymq".into()),
            allow_anonymous: Some(true),
            log_level: Some("debug".into()),
            ws_listen: Some(vec![
                "127.0.0.1:8080".parse().unwrap(),
                "[::1]:8080".parse().unwrap(),
                "127.0.0.1:8081".parse().unwrap(),
            ]),
            auth_http_url: Some("http://127.0.0.1:9000/auth".into()),
            management_listen: Some(vec!["127.0.0.1:15999".parse().unwrap()]),
            management_enabled: Some(false),
        }
    );
}

#[test]
fn allow_anonymous_takes_an_optional_boolean() {
    assert_eq!(serve(&[]).allow_anonymous, None);
    assert_eq!(serve(&["--allow-anonymous"]).allow_anonymous, Some(true));
    assert_eq!(
        serve(&["--allow-anonymous=false"]).allow_anonymous,
        Some(false)
    );
    assert_eq!(serve(&["--allow-anonymous=1"]).allow_anonymous, Some(true));
    assert_eq!(serve(&["--allow-anonymous=0"]).allow_anonymous, Some(false));
    rejected(&["serve", "--allow-anonymous=maybe"]);
}

#[test]
fn bad_flag_values_are_usage_errors() {
    assert!(rejected(&["serve", "--mqtt-listen", "localhost:1883"]).contains("IP:PORT"));
    assert!(rejected(&["serve", "--log-level", "inof"]).contains("unknown log level"));
    assert!(rejected(&["serve", "--auth-http-url", "hook:9000"]).contains("http://"));
    assert!(
        rejected(&["serve", "--auth-http-url", "http://u:p@hook/"]).contains("bearer_token_file")
    );
    rejected(&["serve", "--port", "1883"]);
    rejected(&["check-config"]);
}

#[test]
fn check_config_reports_ok_or_problems() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ferrymq.example.toml");
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = CheckConfigArgs {
        file: example.clone(),
    }
    .run(&mut out, &mut err);
    assert_eq!(code, ExitCode::SUCCESS);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        format!("{}: ok\n", example.display())
    );
    assert!(err.is_empty());

    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = CheckConfigArgs {
        file: "/nonexistent.toml".into(),
    }
    .run(&mut out, &mut err);
    assert_eq!(code, ExitCode::FAILURE);
    assert!(out.is_empty());
    assert!(
        String::from_utf8(err)
            .unwrap()
            .starts_with("/nonexistent.toml: cannot read the file")
    );
}

fn hash(password: Option<&str>, stdin: &str) -> (ExitCode, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = HashPasswordArgs {
        password: password.map(str::to_owned),
    }
    .run(&mut stdin.as_bytes(), &mut out, &mut err);
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

fn verifies(phc: &str, password: &str) -> bool {
    let auth = Authenticator::new(AuthConfig {
        vhost_in_username: true,
        allow_anonymous: false,
        users: vec![UserConfig {
            name: "u".into(),
            password_hash: phc.into(),
            loopback_only: false,
        }],
    })
    .unwrap();
    let peer = IpAddr::V4(Ipv4Addr::LOCALHOST);
    auth.authenticate(Some("u"), Some(password.as_bytes()), peer)
        .is_ok()
}

#[test]
fn hash_password_reads_the_argument_or_one_line_of_stdin() {
    let (code, out, _) = hash(Some("s3cret"), "ignored\n");
    assert_eq!(code, ExitCode::SUCCESS);
    assert!(
        out.starts_with("$argon2id$") && out.ends_with('\n'),
        "{out}"
    );
    assert!(verifies(out.trim_end(), "s3cret"));

    // The line ending is not part of the password, but other whitespace is.
    let (code, out, _) = hash(None, " pass word \r\nsecond line\n");
    assert_eq!(code, ExitCode::SUCCESS);
    assert!(verifies(out.trim_end(), " pass word "));

    let (code, out, err) = hash(None, "\n");
    assert_eq!(code, ExitCode::FAILURE);
    assert!(out.is_empty());
    assert_eq!(err, "ferrymq: error: the password is empty\n");
}
