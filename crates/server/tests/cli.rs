//! Black-box tests of the `ferrymq` binary's command line: help, check-config, hash-password,
//! how flags, environment and config file combine for `serve`, and `bench --threads`.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use ferrymq_auth::{AuthConfig, Authenticator, UserConfig};

const ENV_VARS: [&str; 10] = [
    "FERRYMQ_CONFIG",
    "FERRYMQ_MQTT_LISTEN",
    "FERRYMQ_WS_LISTEN",
    "FERRYMQ_DATA_DIR",
    "FERRYMQ_ALLOW_ANONYMOUS",
    "FERRYMQ_LOG_LEVEL",
    "FERRYMQ_MANAGEMENT_LISTEN",
    "FERRYMQ_MANAGEMENT",
    "FERRYMQ_MANAGEMENT_USER",
    "FERRYMQ_MANAGEMENT_PASSWORD",
];

/// The binary, with no FERRYMQ_* variable inherited from whoever runs the tests.
fn ferrymq() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ferrymq"));
    for var in ENV_VARS {
        command.env_remove(var);
    }
    command.env("NO_COLOR", "1");
    // The management API's default port is fixed (15672): tests that start `serve` must not
    // compete for it.
    command.env("FERRYMQ_MANAGEMENT_LISTEN", "127.0.0.1:0");
    command
}

fn run(command: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = command.stdin(Stdio::null()).output().unwrap();
    (
        status.code().unwrap_or(-1),
        String::from_utf8(stdout).unwrap(),
        String::from_utf8(stderr).unwrap(),
    )
}

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ferrymq.example.toml")
}

/// A file in the temp dir, unique to this test process and `name`.
fn temp_file(name: &str, contents: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("ferrymq-cli-{}-{name}", std::process::id()));
    std::fs::write(&path, contents).unwrap();
    path
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
fn help_lists_the_subcommands() {
    let (code, out, _) = run(ferrymq().arg("--help"));
    assert_eq!(code, 0);
    for word in ["serve", "check-config", "hash-password"] {
        assert!(out.contains(word), "{word} missing from:\n{out}");
    }
    let (code, out, _) = run(ferrymq().args(["serve", "--help"]));
    assert_eq!(code, 0);
    for flag in [
        "--config",
        "--mqtt-listen",
        "--data-dir",
        "--allow-anonymous",
        "--log-level",
        "FERRYMQ_MQTT_LISTEN",
        "--ws-listen",
        "FERRYMQ_WS_LISTEN",
        "--management-listen",
        "FERRYMQ_MANAGEMENT_LISTEN",
        "--management[=<BOOL>]",
    ] {
        assert!(out.contains(flag), "{flag} missing from:\n{out}");
    }
    let (code, out, _) = run(ferrymq().arg("--version"));
    assert_eq!(code, 0);
    assert_eq!(out, format!("ferrymq {}\n", env!("CARGO_PKG_VERSION")));
}

#[test]
fn check_config_accepts_the_example() {
    let (code, out, err) = run(ferrymq().arg("check-config").arg(example()));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, format!("{}: ok\n", example().display()));
}

#[test]
fn check_config_locates_each_kind_of_error() {
    for (name, contents, expected) in [
        (
            "unknown-key.toml",
            "[mqtt]\nlisten = \"0.0.0.0:1883\"\nport = 1\n",
            ":3:1: unknown field `port`",
        ),
        (
            "bad-value.toml",
            "[limits]\nmax_inflight = 0\n",
            ":2:16: limits.max_inflight must be between 1 and 65535",
        ),
        (
            "bad-type.toml",
            "[mqtt]\nmaximum_qos = \"two\"\n",
            ":2:15: mqtt.maximum_qos: invalid type",
        ),
        (
            "syntax.toml",
            "[server]\ndata_dir = \"unterminated\n",
            ":2:",
        ),
    ] {
        let path = temp_file(name, contents);
        let (code, out, err) = run(ferrymq().arg("check-config").arg(&path));
        assert_eq!(code, 1, "{name}: {err}");
        assert!(out.is_empty(), "{name}: {out}");
        let prefix = format!("{}{expected}", path.display());
        assert!(
            err.starts_with(&prefix),
            "{name}: expected {prefix:?}, got:\n{err}"
        );
        let _ = std::fs::remove_file(path);
    }
}

#[test]
fn hash_password_prints_a_verifiable_argon2id_hash() {
    let (code, out, _) = run(ferrymq().args(["hash-password", "s3cret"]));
    assert_eq!(code, 0);
    assert!(out.starts_with("$argon2id$"), "{out}");
    assert!(verifies(out.trim_end(), "s3cret"));

    let mut child = ferrymq()
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"from stdin\n")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let out = String::from_utf8(output.stdout).unwrap();
    assert!(out.starts_with("$argon2id$"), "{out}");
    assert!(verifies(out.trim_end(), "from stdin"));
}

#[test]
fn serve_refuses_an_invalid_config_from_flag_or_environment() {
    let path = temp_file("serve-bad.toml", "[mqtt]\nmaximum_qos = 3\n");
    let expected = format!(
        "{}:2:15: mqtt.maximum_qos must be between 0 and 2",
        path.display()
    );
    let (code, _, err) = run(ferrymq().arg("serve").arg("--config").arg(&path));
    assert_eq!(code, 1);
    assert!(err.starts_with(&expected), "{err}");
    assert!(
        err.contains("ferrymq: error: invalid configuration"),
        "{err}"
    );

    // FERRYMQ_CONFIG, and no subcommand at all (= serve).
    let (code, _, err) = run(ferrymq().env("FERRYMQ_CONFIG", &path));
    assert_eq!(code, 1);
    assert!(err.starts_with(&expected), "{err}");
    let _ = std::fs::remove_file(path);
}

#[test]
fn bad_environment_values_are_usage_errors() {
    let (code, _, err) = run(ferrymq().env("FERRYMQ_MQTT_LISTEN", "127.0.0.1:1,nope"));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("\"nope\" is not an IP:PORT address"), "{err}");
    let (code, _, err) = run(ferrymq().env("FERRYMQ_LOG_LEVEL", "verbose"));
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = run(ferrymq().env("FERRYMQ_ALLOW_ANONYMOUS", "perhaps"));
    assert_eq!(code, 2, "{err}");
}

/// Starts `serve`, returns its startup log line, and stops it (whether the broker would
/// have kept running or failed after logging).
fn startup_line(command: &mut Command) -> String {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("starting") {
                let _ = tx.send(line);
                return;
            }
        }
    });
    let line = rx.recv_timeout(Duration::from_secs(60));
    let _ = child.kill();
    let _ = child.wait();
    line.expect("no startup line")
}

#[test]
fn flags_beat_environment_which_beats_the_file() {
    let data = std::env::temp_dir().join(format!("ferrymq-cli-{}-data", std::process::id()));
    let config = temp_file(
        "precedence.toml",
        "[server]\ndata_dir = \"/file/data\"\nlog_level = \"warn\"\n\n[mqtt]\nlisten = [\"127.0.0.1:0\"]\n\n[auth]\nallow_anonymous = true\n",
    );

    // The file alone (log level raised so that the info startup line shows).
    let line = startup_line(
        ferrymq()
            .args(["serve", "--log-level", "info", "--data-dir"])
            .arg(&data)
            .arg("--config")
            .arg(&config),
    );
    assert!(line.contains("mqtt_listen=[127.0.0.1:0]"), "{line}");
    assert!(line.contains("allow_anonymous=true"), "{line}");
    assert!(
        line.contains(&format!("data_dir={}", data.display())),
        "{line}"
    );
    assert!(line.contains(&format!("FerryMQ {} starting", env!("CARGO_PKG_VERSION"))));

    // Environment over the file; flags over the environment.
    let line = startup_line(
        ferrymq()
            .env("FERRYMQ_CONFIG", &config)
            .env("FERRYMQ_LOG_LEVEL", "info")
            .env("FERRYMQ_DATA_DIR", &data)
            .env("FERRYMQ_ALLOW_ANONYMOUS", "false")
            .env("FERRYMQ_MQTT_LISTEN", "127.0.0.2:0,127.0.0.3:0")
            .args(["serve", "--mqtt-listen", "[::1]:0"]),
    );
    assert!(line.contains("mqtt_listen=[[::1]:0]"), "{line}");
    assert!(line.contains("allow_anonymous=false"), "{line}");

    let line = startup_line(
        ferrymq()
            .env("FERRYMQ_CONFIG", &config)
            .env("FERRYMQ_LOG_LEVEL", "info")
            .env("FERRYMQ_DATA_DIR", &data)
            .env("FERRYMQ_MQTT_LISTEN", "127.0.0.2:0,127.0.0.3:0")
            .arg("serve"),
    );
    assert!(
        line.contains("mqtt_listen=[127.0.0.2:0, 127.0.0.3:0]"),
        "{line}"
    );

    let _ = std::fs::remove_file(config);
    let _ = std::fs::remove_dir_all(data);
}

/// The threads of a `ferrymq bench` with `--threads threads`, counted while it waits for a
/// CONNACK that never comes (the listener accepts and stays silent).
fn bench_thread_count(threads: u16) -> usize {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let mut child = ferrymq()
        .args([
            "bench", "conn", "-c", "1", "-d", "0", "--quiet", "--port", &port,
        ])
        .args([
            "--connect-timeout",
            "20s",
            "--threads",
            &threads.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Once the generator has connected, its runtime is up and it only waits.
    listener.set_nonblocking(true).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let _socket = loop {
        match listener.accept() {
            Ok((socket, _)) => break socket,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if std::time::Instant::now() > deadline {
                    let _ = child.kill();
                    panic!("`ferrymq bench` did not connect within 20 s");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("accept: {e}"),
        }
    };
    std::thread::sleep(Duration::from_millis(300));
    let count = std::fs::read_dir(format!("/proc/{}/task", child.id()))
        .unwrap()
        .count();
    let _ = child.kill();
    let _ = child.wait();
    count
}

#[test]
fn bench_threads_sets_the_generators_worker_threads() {
    // The main thread, the workers, whatever else starts (the same in both runs).
    let one = bench_thread_count(1);
    let three = bench_thread_count(3);
    assert_eq!(
        three - one,
        2,
        "1 worker: {one} threads, 3 workers: {three}"
    );
    let (code, _, err) = run(ferrymq().args(["bench", "conn", "--threads", "0"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--threads"), "{err}");
}
