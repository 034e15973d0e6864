//! A private certificate authority for tests, made with `openssl`: server
//! certificates for `localhost` and `127.0.0.1`, client certificates. Used
//! by the TLS Redis, Sentinel, PostgreSQL and RabbitMQ tests.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A private CA in its own folder.
pub struct TestCa {
    pub dir: tempfile::TempDir,
    /// The CA certificate (PEM).
    pub cert: PathBuf,
    key: PathBuf,
}

/// A certificate and its key, signed by a [`TestCa`].
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl is installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TestCa {
    /// A new CA named `name` (its certificate's CN).
    pub fn new(name: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        openssl(
            dir.path(),
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "3",
                "-subj",
                &format!("/CN={name}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        Self {
            cert: dir.path().join("ca.pem"),
            key: dir.path().join("ca.key"),
            dir,
        }
    }

    fn issue(&self, stem: &str, cn: &str, ext: &str) -> Issued {
        let d = self.dir.path();
        std::fs::write(d.join(format!("{stem}.ext")), ext).expect("ext file");
        openssl(
            d,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &format!("{stem}.key"),
                "-out",
                &format!("{stem}.csr"),
                "-subj",
                &format!("/CN={cn}"),
            ],
        );
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{stem}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &format!("{stem}.pem"),
                "-days",
                "3",
                "-extfile",
                &format!("{stem}.ext"),
            ],
        );
        Issued {
            cert: d.join(format!("{stem}.pem")),
            key: d.join(format!("{stem}.key")),
        }
    }

    /// A server certificate for `localhost` and `127.0.0.1`.
    pub fn server(&self) -> Issued {
        self.issue(
            "server",
            "localhost",
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        )
    }

    /// A client certificate whose CN is `user`.
    pub fn client(&self, user: &str) -> Issued {
        self.issue(
            &format!("client-{user}"),
            user,
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n\
             extendedKeyUsage=clientAuth\n",
        )
    }

    /// Let `user` read every file of the CA folder (servers that drop root).
    pub fn give_to(&self, user: &str) {
        chown(self.dir.path(), user);
    }
}

/// Whether this process runs as root (servers then run as another user).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// `chown -R user: path` (only as root).
pub fn chown(path: &Path, user: &str) {
    if !is_root() {
        return;
    }
    let status = Command::new("chown")
        .arg("-R")
        .arg(format!("{user}:"))
        .arg(path)
        .status()
        .expect("chown");
    assert!(status.success(), "chown {user} {}", path.display());
}
