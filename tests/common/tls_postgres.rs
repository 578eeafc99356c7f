//! A PostgreSQL server of its own with `ssl=on` that accepts TCP connections over TLS only
//! (`hostssl` rules), and a CA made for it with the `openssl` CLI. Its certificate names
//! `localhost` and no IP address, so `verify-full` to 127.0.0.1 fails where `verify-ca` passes.
//! It is a [`Cluster`] with certificates in its directory: dropping it stops the server and
//! removes the directory.

use std::path::Path;
use std::process::Command;

use super::cluster::Cluster;

/// The running server and its certificates.
pub struct TlsPostgres {
    cluster: Cluster,
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
        let cluster = Cluster::prepare(test);
        let dir = cluster.dir().to_path_buf();
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
        let cluster = cluster.with_options(&format!(
            "-c ssl=on -c ssl_cert_file={d}/server.crt -c ssl_key_file={d}/server.key \
             -c hba_file={d}/pg_hba.conf -c max_connections=50",
            d = dir.display()
        ));
        // The server reads its key as its own user, and only a key no one else may read.
        cluster.pg_ok(
            "give the certificates to the server's user",
            r#"pg_owner "$0" && chmod 600 "$0/server.key""#,
        );
        cluster.up();
        TlsPostgres {
            port: cluster.port,
            cluster,
        }
    }

    /// A file of the server's directory: `ca.crt`, `other-ca.crt`.
    pub fn file(&self, name: &str) -> String {
        self.cluster.dir().join(name).display().to_string()
    }

    /// A URL for database `postgres` as user postgres at `host` with `options` as its query.
    pub fn url(&self, host: &str, options: &str) -> String {
        format!(
            "postgres://postgres@{host}:{}/postgres?{options}",
            self.port
        )
    }
}
