//! The real binary's access-control commands: `users`, `vhosts`, `permissions`,
//! `import-definitions`, `export-definitions` against a data directory, how they find it,
//! how they refuse inconsistent changes, and a running `serve` picking their changes up.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ferrymq_auth::{Definitions, PasswordHash};

const RABBIT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../auth/tests/fixtures/rabbit-definitions.json"
);

/// The binary, with no FERRYMQ_* variable inherited from whoever runs the tests.
fn ferrymq() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ferrymq"));
    for var in [
        "FERRYMQ_CONFIG",
        "FERRYMQ_MQTT_LISTEN",
        "FERRYMQ_WS_LISTEN",
        "FERRYMQ_DATA_DIR",
        "FERRYMQ_ALLOW_ANONYMOUS",
        "FERRYMQ_LOG_LEVEL",
        "FERRYMQ_MANAGEMENT",
        "FERRYMQ_MANAGEMENT_USER",
        "FERRYMQ_MANAGEMENT_PASSWORD",
    ] {
        command.env_remove(var);
    }
    // The management API's default port is fixed (15672): brokers started here must not
    // compete for it.
    command.env("FERRYMQ_MANAGEMENT_LISTEN", "127.0.0.1:0");
    command
}

struct Run {
    code: i32,
    out: String,
    err: String,
}

/// Runs `ferrymq ARGS --data-dir DIR` with `stdin` as standard input.
fn run_in(dir: &Path, args: &[&str], stdin: &str) -> Run {
    let mut child = ferrymq()
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).unwrap();
    drop(input);
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().unwrap();
    Run {
        code: status.code().unwrap_or(-1),
        out: String::from_utf8(stdout).unwrap(),
        err: String::from_utf8(stderr).unwrap(),
    }
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let run = run_in(dir, args, "");
    assert_eq!(run.code, 0, "{args:?}: {}", run.err);
    run.out
}

fn fails(dir: &Path, args: &[&str]) -> String {
    let run = run_in(dir, args, "");
    assert_eq!(run.code, 1, "{args:?} should fail: {}{}", run.out, run.err);
    assert!(run.err.starts_with("ferrymq: error: "), "{}", run.err);
    run.err
}

fn stored(dir: &Path) -> Definitions {
    let text = std::fs::read_to_string(dir.join("definitions.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn users_vhosts_and_permissions_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    // The first user creates the default vhost; the password comes from stdin.
    let run = run_in(
        dir,
        &["users", "add", "alice", "--tags", "administrator"],
        "s3cret\n",
    );
    assert_eq!(run.code, 0, "{}", run.err);
    assert!(
        run.out.contains("created the default vhost \"/\""),
        "{}",
        run.out
    );
    ok(
        dir,
        &[
            "users",
            "add",
            "device",
            "--password",
            "pw",
            "--max-connections",
            "3",
        ],
    );
    ok(
        dir,
        &["vhosts", "add", "tenant", "--description", "Tenant A"],
    );
    ok(
        dir,
        &[
            "permissions",
            "set",
            "--vhost",
            "tenant",
            "device",
            "--publish",
            "devices/{client_id}/#",
            "--subscribe",
            "devices/#",
            "--deny-subscribe",
            "devices/secret/#",
        ],
    );
    ok(
        dir,
        &[
            "permissions",
            "set",
            "alice",
            "--publish",
            "#",
            "--subscribe",
            "#",
            "--read-sys",
        ],
    );

    let defs = stored(dir);
    assert_eq!(defs.validate(), vec![]);
    let alice = defs.user("alice").unwrap();
    assert!(matches!(alice.password_hash, PasswordHash::Argon2id(_)));
    assert!(alice.password_hash.verify(b"s3cret"));
    assert!(defs.user("device").unwrap().password_hash.verify(b"pw"));
    assert_eq!(defs.user("device").unwrap().max_connections, Some(3));
    let device = defs.permissions("device", "tenant").unwrap();
    assert_eq!(device.subscribe.deny, vec!["devices/secret/#".to_owned()]);
    assert!(defs.permissions("alice", "/").unwrap().read_sys);

    let users = ok(dir, &["users", "list"]);
    assert!(users.starts_with("name "), "{users}");
    assert!(
        users.contains("alice") && users.contains("administrator"),
        "{users}"
    );
    assert!(
        !users.contains("$argon2id"),
        "no hashes in listings: {users}"
    );
    let vhosts = ok(dir, &["vhosts", "list"]);
    assert!(vhosts.contains("Tenant A"), "{vhosts}");
    let tenant = ok(dir, &["permissions", "list", "--vhost", "tenant"]);
    assert!(tenant.contains("devices/{client_id}/#"), "{tenant}");
    assert!(!tenant.contains("alice"), "{tenant}");

    ok(
        dir,
        &["users", "set-tags", "alice", "monitoring,management"],
    );
    let run = run_in(
        dir,
        &["users", "set-password", "alice", "--password-stdin"],
        "n3w\n",
    );
    assert_eq!(run.code, 0, "{}", run.err);
    let defs = stored(dir);
    assert!(defs.user("alice").unwrap().password_hash.verify(b"n3w"));
    assert_eq!(defs.user("alice").unwrap().tags.len(), 2);

    // Deleting a vhost deletes its permissions; deleting a user too.
    let out = ok(dir, &["vhosts", "delete", "tenant"]);
    assert!(out.contains("1 permission record"), "{out}");
    assert!(stored(dir).permissions("device", "tenant").is_none());
    ok(dir, &["permissions", "clear", "--vhost", "/", "alice"]);
    ok(dir, &["users", "delete", "device"]);
    let defs = stored(dir);
    assert_eq!(defs.users.len(), 1);
    assert!(defs.permissions.is_empty());
}

#[test]
fn inconsistent_changes_are_refused_and_nothing_is_saved() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    ok(dir, &["users", "add", "alice", "--no-password"]);
    let before = std::fs::read(dir.join("definitions.json")).unwrap();

    let err = fails(dir, &["users", "add", "alice", "--password", "x"]);
    assert!(err.contains("already exists"), "{err}");
    let err = fails(
        dir,
        &[
            "permissions",
            "set",
            "--vhost",
            "nowhere",
            "alice",
            "--publish",
            "a",
        ],
    );
    assert!(err.contains("no vhost \"nowhere\""), "{err}");
    let err = fails(dir, &["permissions", "set", "ghost", "--publish", "a"]);
    assert!(err.contains("no user \"ghost\""), "{err}");
    let err = fails(dir, &["permissions", "set", "alice", "--publish", "a/#/b"]);
    assert!(
        err.contains("a/#/b") && err.contains("nothing was changed"),
        "{err}"
    );
    let err = fails(
        dir,
        &["permissions", "set", "alice", "--subscribe", "{clientid}/x"],
    );
    assert!(err.contains("{clientid}"), "{err}");
    let err = fails(dir, &["users", "add", "tenant:bob", "--password", "x"]);
    assert!(err.contains("no ':'"), "{err}");
    let err = fails(dir, &["users", "delete", "nobody"]);
    assert!(err.contains("no user \"nobody\""), "{err}");
    let err = fails(dir, &["vhosts", "delete", "nowhere"]);
    assert!(err.contains("no vhost \"nowhere\""), "{err}");
    let run = run_in(dir, &["users", "add", "bob"], "\n");
    assert_eq!(run.code, 1);
    assert!(run.err.contains("the password is empty"), "{}", run.err);
    // Two password sources: a usage error (exit 2) before anything is read.
    let run = run_in(
        dir,
        &["users", "add", "bob", "--password", "x", "--no-password"],
        "",
    );
    assert_eq!(run.code, 2, "{}", run.err);

    assert_eq!(std::fs::read(dir.join("definitions.json")).unwrap(), before);

    // A broken file is reported with its name, by the commands and by serve.
    std::fs::write(dir.join("definitions.json"), "{ nope").unwrap();
    let err = fails(dir, &["users", "list"]);
    assert!(err.contains("definitions.json"), "{err}");
    let serve = run_in(
        dir,
        &[
            "serve",
            "--mqtt-listen",
            "127.0.0.1:0",
            "--ws-listen",
            "127.0.0.1:0",
        ],
        "",
    );
    assert_eq!(serve.code, 1);
    assert!(serve.err.contains("definitions.json"), "{}", serve.err);

    // So is an inconsistent one, with every problem.
    let unknown_vhost = r#"{"users": [{"name": "a", "password_hash": {"algorithm": "none"}}],
        "permissions": [{"user": "a", "vhost": "v", "permissions": {}},
                        {"user": "b", "vhost": "/", "permissions": {}}]}"#;
    std::fs::write(dir.join("definitions.json"), unknown_vhost).unwrap();
    let serve = run_in(
        dir,
        &[
            "serve",
            "--mqtt-listen",
            "127.0.0.1:0",
            "--ws-listen",
            "127.0.0.1:0",
        ],
        "",
    );
    assert_eq!(serve.code, 1);
    assert!(serve.err.contains("unknown vhost \"v\""), "{}", serve.err);
    assert!(serve.err.contains("unknown user \"b\""), "{}", serve.err);
}

#[test]
fn rabbitmq_import_and_our_export() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let run = run_in(dir, &["import-definitions", RABBIT], "");
    assert_eq!(run.code, 0, "{}", run.err);
    assert!(run.out.contains("RabbitMQ definitions"), "{}", run.out);
    assert!(
        run.out.contains("users: 6 (6 added, 0 replaced)"),
        "{}",
        run.out
    );
    // Every warning is printed.
    assert!(
        run.err.contains("warning: user \"tenant:mallory\" skipped"),
        "{}",
        run.err
    );
    assert!(run.err.contains("\"^devices\\\\.[a-z]+$\""), "{}", run.err);
    let defs = stored(dir);
    assert!(
        defs.user("alice")
            .unwrap()
            .password_hash
            .verify(b"alice-pw")
    );
    assert!(defs.permissions("bob", "iot").is_some());

    // Our export: hashes stay hashed, and it imports back (auto-detected) unchanged.
    let export = ok(dir, &["export-definitions"]);
    assert!(export.contains("\"ferrymq_definitions\": 1"), "{export}");
    assert!(!export.contains("alice-pw"));
    let file = dir.join("export.json");
    ok(dir, &["export-definitions", file.to_str().unwrap()]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    let other = tempfile::tempdir().unwrap();
    let run = run_in(
        other.path(),
        &["import-definitions", file.to_str().unwrap()],
        "",
    );
    assert_eq!(run.code, 0, "{}", run.err);
    assert!(run.out.contains("FerryMQ definitions"), "{}", run.out);
    assert_eq!(stored(other.path()), defs);
    // Again: everything is replaced, nothing added.
    let run = run_in(
        other.path(),
        &["import-definitions", "-", "--format", "ferrymq"],
        &export,
    );
    assert!(
        run.out.contains("users: 6 (0 added, 6 replaced)"),
        "{}",
        run.out
    );

    // A file whose format cannot be told, or that is not JSON.
    let err = fails(dir, &["import-definitions", "-"]);
    assert!(err.contains("JSON"), "{err}");
    let empty = dir.join("empty.json");
    std::fs::write(&empty, "{}").unwrap();
    let err = fails(dir, &["import-definitions", empty.to_str().unwrap()]);
    assert!(err.contains("--format"), "{err}");
    let err = fails(dir, &["import-definitions", "/nonexistent/file.json"]);
    assert!(err.contains("/nonexistent/file.json"), "{err}");
}

#[test]
fn the_data_directory_is_found_like_serve_finds_it() {
    let base = tempfile::tempdir().unwrap();
    let from_config = base.path().join("from-config");
    let config = base.path().join("ferrymq.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\ndata_dir = {:?}\n",
            from_config.display().to_string()
        ),
    )
    .unwrap();
    let add = |command: &mut Command| {
        let status = command.stdout(Stdio::null()).status().unwrap();
        assert!(status.success());
    };
    // --config: the file's server.data_dir (flags may also come before the verb).
    add(ferrymq()
        .args(["vhosts", "--config"])
        .arg(&config)
        .args(["add", "v"]));
    assert!(from_config.join("definitions.json").exists());
    // FERRYMQ_DATA_DIR beats the config file.
    let from_env = base.path().join("from-env");
    add(ferrymq()
        .args(["vhosts", "add", "v"])
        .env("FERRYMQ_DATA_DIR", &from_env)
        .env("FERRYMQ_CONFIG", &config));
    assert!(from_env.join("definitions.json").exists());
    // ./data without either.
    add(ferrymq()
        .args(["vhosts", "add", "v"])
        .current_dir(base.path()));
    assert!(base.path().join("data/definitions.json").exists());
    // An invalid config file is reported.
    std::fs::write(&config, "[server]\nnope = 1\n").unwrap();
    let output = ferrymq()
        .args(["users", "list", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("nope"));
}

// ---- a running broker ----------------------------------------------------------------

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Serve {
    child: Child,
    port: u16,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &Path, config: Option<&Path>) -> Serve {
    let port = free_port();
    let mut command = ferrymq();
    command
        .args(["serve", "--mqtt-listen", &format!("127.0.0.1:{port}")])
        .args(["--ws-listen", &format!("127.0.0.1:{}", free_port())])
        .arg("--data-dir")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("broker.log")).unwrap());
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    let child = command.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "port {port} never opened");
        std::thread::sleep(Duration::from_millis(20));
    }
    Serve { child, port }
}

fn mqtt_string(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(&u16::try_from(text.len()).unwrap().to_be_bytes());
    out.extend_from_slice(text.as_bytes());
}

/// CONNECT (MQTT 3.1.1, clean session) with a user name and password; the CONNACK code
/// (0 accepted, 4 bad user name or password, 5 not authorized).
fn login(port: u16, user: &str, password: &str) -> u8 {
    let mut body = Vec::new();
    mqtt_string(&mut body, "MQTT");
    body.extend_from_slice(&[4, 0xC2, 0, 60]);
    mqtt_string(&mut body, "cli-test");
    mqtt_string(&mut body, user);
    mqtt_string(&mut body, password);
    let mut packet = vec![0x10, u8::try_from(body.len()).unwrap()];
    packet.extend_from_slice(&body);
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(&packet).unwrap();
    let mut ack = [0u8; 4];
    stream.read_exact(&mut ack).unwrap();
    assert_eq!(ack[..2], [0x20, 0x02], "{ack:?}");
    ack[3]
}

/// Polls `login` until it returns `code` (the broker looks at the file every 2 s).
fn eventually(port: u16, user: &str, password: &str, code: u8, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = login(port, user, password);
        if got == code {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{user}: CONNACK {got}, expected {code}\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_running_broker_applies_changes_and_upgrades_rabbitmq_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let log = dir.join("broker.log");
    ok(dir, &["import-definitions", RABBIT]);
    let broker = serve(dir, None);

    // A RabbitMQ user logs in with its RabbitMQ password; its hash becomes argon2id.
    assert_eq!(login(broker.port, "alice", "alice-pw"), 0);
    assert_eq!(login(broker.port, "alice", "wrong"), 4);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !matches!(
        stored(dir).user("alice").unwrap().password_hash,
        PasswordHash::Argon2id(_)
    ) {
        assert!(Instant::now() < deadline, "alice's hash was not upgraded");
        std::thread::sleep(Duration::from_millis(200));
    }
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("upgraded to argon2id"), "{text}");
    assert!(
        !text.contains("$argon2id$"),
        "hashes are never logged: {text}"
    );
    // It still logs in, now against the argon2id hash (after the reload).
    eventually(broker.port, "alice", "alice-pw", 0, &log);

    // Changes made with the CLI while the broker runs apply within seconds.
    let run = run_in(dir, &["users", "add", "zed", "--password", "zz"], "");
    assert_eq!(run.code, 0, "{}", run.err);
    eventually(broker.port, "zed", "zz", 5, &log); // exists, but no permissions in "/"
    ok(dir, &["permissions", "set", "zed", "--publish", "#"]);
    eventually(broker.port, "zed", "zz", 0, &log);
    eventually(broker.port, "iot:bob", "bob-pw", 0, &log);
    ok(dir, &["permissions", "clear", "--vhost", "iot", "bob"]);
    eventually(broker.port, "iot:bob", "bob-pw", 5, &log);

    // A broken file keeps the current definitions.
    std::fs::write(dir.join("definitions.json"), "{ nope").unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(login(broker.port, "zed", "zz"), 0);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("definitions not reloaded"), "{text}");
}

/// The vhost of the MQTT listener (`[mqtt] vhost`) is where clients without a `vhost:`
/// prefix land.
#[test]
fn the_listener_vhost_applies_to_database_users() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    ok(dir, &["users", "add", "dev", "--password", "pw"]);
    ok(dir, &["vhosts", "add", "tenant"]);
    ok(
        dir,
        &[
            "permissions",
            "set",
            "--vhost",
            "tenant",
            "dev",
            "--publish",
            "#",
        ],
    );
    let config = dir.join("ferrymq.toml");
    std::fs::write(&config, "[mqtt]\nvhost = \"tenant\"\n").unwrap();
    let broker = serve(dir, Some(&config));
    assert_eq!(login(broker.port, "dev", "pw"), 0, "the listener's vhost");
    assert_eq!(
        login(broker.port, "tenant:dev", "pw"),
        0,
        "the same, explicitly"
    );
    assert_eq!(login(broker.port, "/:dev", "pw"), 5, "no permissions in /");
}
