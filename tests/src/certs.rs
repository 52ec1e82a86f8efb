//! Test certificates made with the `openssl` CLI: a CA, a node certificate for 127.0.0.1
//! (server and client use) and a client certificate it signed, plus an outsider certificate
//! from another CA.

use anyhow::{ensure, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Certs {
    pub ca: PathBuf,
    pub node_cert: PathBuf,
    pub node_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub outsider_cert: PathBuf,
    pub outsider_key: PathBuf,
}

fn openssl(args: &[&str]) -> Result<()> {
    let out = Command::new("openssl").args(args).output().context("openssl is missing: apt-get install -y openssl")?;
    ensure!(out.status.success(), "openssl {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    Ok(())
}

fn ca(dir: &Path, name: &str) -> Result<(String, String)> {
    let (cert, key) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")));
    let (c, k) = (cert.display().to_string(), key.display().to_string());
    openssl(&[
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", &format!("/CN={name}"),
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-keyout", &k, "-out", &c,
    ])?;
    Ok((c, k))
}

fn leaf(dir: &Path, name: &str, ca: &(String, String)) -> Result<(PathBuf, PathBuf)> {
    let (cert, key, csr, ext) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")), dir.join(format!("{name}.csr")), dir.join(format!("{name}.ext")));
    std::fs::write(&ext, "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n")?;
    let s = |p: &PathBuf| p.display().to_string();
    openssl(&["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", &format!("/CN={name}"), "-keyout", &s(&key), "-out", &s(&csr)])?;
    openssl(&["x509", "-req", "-in", &s(&csr), "-CA", &ca.0, "-CAkey", &ca.1, "-CAcreateserial", "-days", "2", "-extfile", &s(&ext), "-out", &s(&cert)])?;
    Ok((cert, key))
}

impl Certs {
    pub fn make(dir: &Path) -> Result<Certs> {
        let root = ca(dir, "ca")?;
        let other = ca(dir, "other-ca")?;
        let (node_cert, node_key) = leaf(dir, "node", &root)?;
        let (client_cert, client_key) = leaf(dir, "client", &root)?;
        let (outsider_cert, outsider_key) = leaf(dir, "outsider", &other)?;
        Ok(Certs { ca: PathBuf::from(root.0), node_cert, node_key, client_cert, client_key, outsider_cert, outsider_key })
    }

    /// An https client trusting the CA, showing `cert`/`key` when given.
    pub fn client(&self, identity: Option<(&Path, &Path)>) -> Result<reqwest::Client> {
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(&self.ca)?)?);
        if let Some((cert, key)) = identity {
            let mut pem = std::fs::read(cert)?;
            pem.push(b'\n');
            pem.extend(std::fs::read(key)?);
            b = b.identity(reqwest::Identity::from_pem(&pem)?);
        }
        Ok(b.build()?)
    }
}
