//! A PostgreSQL server of its own with `ssl=on` that accepts TCP connections over TLS only
//! (`hostssl` rules), and a CA made for it with the `openssl` CLI. Its certificate names
//! `localhost` and no IP address, so `verify-full` to 127.0.0.1 fails where `verify-ca` passes.
//! Dropping it stops the server and removes its directory.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::process::free_port;

/// The running server and its certificates.
pub struct TlsPostgres {
    dir: PathBuf,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

fn run(what: &str, command: &mut Command) {
    let output = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn openssl(dir: &Path, args: &[&str]) {
    run(
        &format!("openssl {}", args.join(" ")),
        Command::new("openssl").current_dir(dir).args(args),
    );
}

/// A self-signed CA `name`.crt/.key in `dir`.
fn make_ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN=postmand test {name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
        ],
    );
}

impl TlsPostgres {
    /// Makes the CA and the server's certificate, then starts the server.
    pub fn start(test: &str) -> TlsPostgres {
        let dir = std::env::temp_dir().join(format!(
            "postmand-{test}-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).expect("create the server's directory");
        make_ca(&dir, "ca");
        make_ca(&dir, "other-ca");
        openssl(
            &dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-subj",
                "/CN=localhost",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
            ],
        );
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n",
        )
        .expect("write server.ext");
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "server.ext",
                "-out",
                "server.crt",
            ],
        );
        // Local (socket) connections stay open for the fixture itself; TCP needs TLS.
        std::fs::write(
            dir.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n",
        )
        .expect("write pg_hba.conf");
        let port = free_port();
        let options = format!(
            "-c fsync=off -c ssl=on -c ssl_cert_file={d}/server.crt -c ssl_key_file={d}/server.key \
             -c hba_file={d}/pg_hba.conf -c max_connections=50 -c shared_buffers=32MB",
            d = dir.display()
        );
        let server = TlsPostgres { dir, port };
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/lib/pg.sh");
        run(
            "start the TLS PostgreSQL server",
            Command::new("bash")
                .arg("-c")
                .arg(format!(
                    ". {script} && pg_find_bin && \
                     if [ \"$(id -u)\" = 0 ]; then id postgres >/dev/null 2>&1 || useradd --system postgres; \
                     chown -R postgres \"$0\"; chmod 600 \"$0/server.key\"; fi && pg_start \"$0\" {port}"
                ))
                .arg(&server.dir)
                .env("PG_EXTRA_OPTS", options),
        );
        server
    }

    /// A file of the server's directory: `ca.crt`, `other-ca.crt`.
    pub fn file(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// A URL for database `postgres` as user postgres at `host` with `options` as its query.
    pub fn url(&self, host: &str, options: &str) -> String {
        format!(
            "postgres://postgres@{host}:{}/postgres?{options}",
            self.port
        )
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/lib/pg.sh");
        let _ = Command::new("bash")
            .arg("-c")
            .arg(format!(". {script} && pg_find_bin && pg_stop \"$0\""))
            .arg(&self.dir)
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
