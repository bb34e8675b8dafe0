//! Certificates for tests: a certificate authority of the test's own (as a
//! company's internal CA is: in no built-in store), and the server and
//! client certificates it issues, as PEM files. The test harness's own
//! HTTP clients trust every CA made in this process ([`trusted`]).

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Mutex;

static TRUSTED: Mutex<Vec<String>> = Mutex::new(Vec::new());
static PRESENTED: Mutex<Option<(PathBuf, PathBuf)>> = Mutex::new(None);

/// Makes the harness's own clients present `id` (to a server that wants
/// client certificates).
pub fn present(id: &Issued) {
    *PRESENTED.lock().unwrap() = Some((id.cert.clone(), id.key.clone()));
}

/// The PEM of every CA made in this process, for the harness's own clients.
pub fn trusted() -> Vec<reqwest::Certificate> {
    TRUSTED
        .lock()
        .unwrap()
        .iter()
        .map(|p| reqwest::Certificate::from_pem(p.as_bytes()).unwrap())
        .collect()
}

/// A reqwest client builder that trusts the tests' CAs (and presents the
/// harness's client certificate, if one was given).
pub fn client_builder() -> reqwest::ClientBuilder {
    // Bounded: a server that never answers fails the test here, saying so,
    // instead of stalling it until the harness kills it.
    let b = trusted().into_iter().fold(
        reqwest::Client::builder().timeout(std::time::Duration::from_secs(60)),
        |b, c| b.add_root_certificate(c),
    );
    match PRESENTED.lock().unwrap().clone() {
        Some((cert, key)) => {
            let mut pem = std::fs::read(cert).unwrap();
            pem.extend(std::fs::read(key).unwrap());
            b.identity(reqwest::Identity::from_pem(&pem).unwrap())
        }
        None => b,
    }
}

/// A CA, and where its files are.
pub struct TestCa {
    cert: rcgen::Certificate,
    key: KeyPair,
    /// The directory holding every file it writes.
    pub dir: tempfile::TempDir,
    /// Its certificate (PEM): what `ca_file` names.
    pub ca_file: PathBuf,
}

/// A certificate and its key, as files.
pub struct Issued {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its key (PEM, mode 0600).
    pub key: PathBuf,
}

impl TestCa {
    /// A new CA named `name`.
    pub fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "regent tests");
        let cert = params.self_signed(&key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, cert.pem()).unwrap();
        TRUSTED.lock().unwrap().push(cert.pem());
        TestCa {
            cert,
            key,
            dir,
            ca_file,
        }
    }

    fn issue(&self, file: &str, names: &[&str], cn: &str) -> Issued {
        self.issue_with(file, names, cn, false)
    }

    fn issue_with(&self, file: &str, names: &[&str], cn: &str, expired: bool) -> Issued {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        let issued = Issued {
            cert: self.dir.path().join(format!("{file}.pem")),
            key: self.dir.path().join(format!("{file}.key")),
        };
        std::fs::write(&issued.cert, cert.pem()).unwrap();
        std::fs::write(&issued.key, key.serialize_pem()).unwrap();
        std::fs::set_permissions(&issued.key, std::fs::Permissions::from_mode(0o600)).unwrap();
        issued
    }

    /// A server certificate for 127.0.0.1 and localhost.
    pub fn server(&self) -> Issued {
        self.issue("server", &["127.0.0.1", "localhost"], "127.0.0.1")
    }

    /// A server certificate for `names` (host names or addresses).
    pub fn server_for(&self, names: &[&str]) -> Issued {
        self.issue("server", names, names[0])
    }

    /// A server certificate for 127.0.0.1 that expired in 2021.
    pub fn expired_server(&self) -> Issued {
        self.issue_with("expired", &["127.0.0.1"], "127.0.0.1", true)
    }

    /// A client certificate for `cn` (mutual TLS).
    pub fn client(&self, cn: &str) -> Issued {
        self.issue("client", &[], cn)
    }
}
