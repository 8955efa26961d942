//! Client security with real processes: the client port over HTTPS (rustls) with password
//! authentication against a file of argon2 hashes made by `shoal password-hash`; `shoal sql
//! --password`, `haadmin` and the Python `trino` client's BasicAuthentication against it;
//! users see only their own queries unless admins.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use shoal_tests::process::{shoal_binary, sql_command, ProcessCluster};
use shoal_tests::python::run_pytest;

const USERS: [(&str, &str); 3] = [
    ("alice", "wonderland"),
    ("bob", "builder"),
    ("carol", "admin-pass"),
];

/// A certificate authority and a server certificate for localhost signed by it: the CA's PEM
/// file for clients, and the server's keystore (certificate and key in one PEM file).
fn make_certificates(dir: &Path) -> (PathBuf, PathBuf) {
    let ca_key = KeyPair::generate().expect("a CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "Shoal test authority");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_certificate = ca.self_signed(&ca_key).expect("the CA certificate");
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().expect("a server key");
    let mut server = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .expect("server parameters");
    server
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let certificate = server
        .signed_by(&key, &issuer)
        .expect("the server certificate");
    let ca_file = dir.join("ca.pem");
    let keystore = dir.join("coordinator.pem");
    std::fs::write(&ca_file, ca_certificate.pem()).expect("write the CA");
    std::fs::write(
        &keystore,
        format!("{}{}", certificate.pem(), key.serialize_pem()),
    )
    .expect("write the keystore");
    (ca_file, keystore)
}

/// A password file made with `shoal password-hash`, one line per user.
fn make_password_file(dir: &Path) -> PathBuf {
    let mut lines = String::from("# made by the test\n");
    for (user, password) in USERS {
        let mut hasher = Command::new(shoal_binary())
            .args(["password-hash", "--user", user])
            .env("SHOAL_LOG", "error")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run password-hash");
        hasher
            .stdin
            .take()
            .expect("stdin")
            .write_all(format!("{password}\n").as_bytes())
            .expect("send the password");
        let output = hasher.wait_with_output().expect("password-hash output");
        assert!(output.status.success(), "{output:?}");
        let line = String::from_utf8(output.stdout).expect("text");
        assert!(line.starts_with(&format!("{user}:$argon2id$")), "{line}");
        lines.push_str(&line);
    }
    let path = dir.join("password.db");
    std::fs::write(&path, lines).expect("write the password file");
    path
}

fn secure_cluster() -> ProcessCluster {
    let mut cluster = ProcessCluster::new(2);
    let (ca, keystore) = make_certificates(cluster.dir.path());
    let passwords = make_password_file(cluster.dir.path());
    cluster.extra_config = format!(
        "http-server.https.enabled=true\nhttp-server.https.keystore.path={}\n\
         http-server.authentication.type=PASSWORD\nhttp-server.authentication.password-file={}\n\
         query.admin-users=carol\n",
        keystore.display(),
        passwords.display()
    );
    cluster.client_ca = Some(ca);
    cluster.start_joined(2);
    cluster
}

/// `shoal sql` against coordinator 1 with `args`, TRINO_PASSWORD set to `password` if given.
fn shell(cluster: &ProcessCluster, args: &[&str], password: Option<&str>) -> Output {
    let mut command = Command::new("timeout");
    command
        .arg("60")
        .arg(shoal_binary())
        .args([
            "sql",
            "--server",
            &cluster.client_url(1),
            "--output-format",
            "csv",
        ])
        .args(args)
        .env("SHOAL_LOG", "error")
        .env_remove("TRINO_PASSWORD")
        .stdin(Stdio::null());
    if let Some(password) = password {
        command.env("TRINO_PASSWORD", password);
    }
    command.output().expect("run shoal sql")
}

#[test]
fn https_and_passwords_for_the_shell_and_the_python_client() {
    let cluster = secure_cluster();
    assert!(cluster.client_url(1).starts_with("https://"));
    let ca = cluster
        .client_ca
        .clone()
        .expect("a CA")
        .display()
        .to_string();

    let query = [
        "--ca-file",
        &ca,
        "--user",
        "alice",
        "--execute",
        "SELECT 6 * 7 AS answer",
    ];
    let with_password = [&query[..], &["--password"]].concat();
    let answer = shell(&cluster, &with_password, Some("wonderland"));
    assert!(answer.status.success(), "{answer:?}");
    assert_eq!(String::from_utf8_lossy(&answer.stdout).trim(), "answer\n42");

    for (args, password, expected) in [
        (&query[..], None, "401"),
        (&with_password[..], Some("not-the-password"), "401"),
        (&with_password[2..], Some("wonderland"), "certificate"),
    ] {
        let answer = shell(&cluster, args, password);
        let stderr = String::from_utf8_lossy(&answer.stderr).to_string();
        assert!(!answer.status.success(), "{args:?} succeeded: {answer:?}");
        assert!(
            stderr.to_lowercase().contains(expected),
            "{args:?}: expected {expected:?} in {stderr}"
        );
    }

    let plain = cluster.client_url(1).replace("https://", "http://");
    let answer = sql_command(&plain)
        .args(["--user", "alice", "--password"])
        .args(["--execute", "SELECT 1"])
        .env("TRINO_PASSWORD", "wonderland")
        .output()
        .expect("run shoal sql");
    assert!(
        !answer.status.success(),
        "plain HTTP to the HTTPS port: {answer:?}"
    );

    let urls = cluster.client_urls(2).join(",");
    run_pytest(
        "python-auth",
        &[
            ("SHOAL_COORDINATORS", urls.as_ref()),
            ("SHOAL_CA_FILE", ca.as_ref()),
        ],
        // requests lets these override a session's own `verify` (the CA file given to trino).
        &["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"],
    );
}

#[test]
fn password_authentication_needs_https_unless_allowed() {
    let mut cluster = ProcessCluster::new(1);
    let passwords = make_password_file(cluster.dir.path());
    cluster.extra_config = format!(
        "http-server.authentication.type=PASSWORD\nhttp-server.authentication.password-file={}\n",
        passwords.display()
    );
    cluster.configure(1);
    let etc = cluster.coordinators[&1].etc.clone();
    let refused = Command::new("timeout")
        .arg("60")
        .arg(shoal_binary())
        .args(["coordinator", "--etc"])
        .arg(&etc)
        .output()
        .expect("run a coordinator");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("http-server.https.enabled"), "{stderr}");

    // Allowed explicitly: plain HTTP with passwords (for a TLS-terminating proxy in front).
    let config = etc.join("config.properties");
    let mut text = std::fs::read_to_string(&config).expect("config");
    text.push_str("http-server.authentication.allow-insecure-over-http=true\n");
    std::fs::write(&config, text).expect("config");
    cluster.start_joined(1);
    let base = cluster.client_url(1);
    let status = |auth: Option<(&str, &str)>| {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut request = agent.post(format!("{base}/v1/statement"));
        if let Some((user, password)) = auth {
            use base64::Engine;
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            request = request.header("Authorization", format!("Basic {token}"));
        }
        request
            .send("SELECT 1")
            .expect("an answer")
            .status()
            .as_u16()
    };
    assert_eq!(status(None), 401);
    assert_eq!(status(Some(("bob", "wrong"))), 401);
    assert_eq!(status(Some(("bob", "builder"))), 200);
}
