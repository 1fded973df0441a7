//! An X.509 certificate as the vendor simulators need it: the RSA public key that verifies a
//! JWT assertion, and the SHA-1 / SHA-256 thumbprints Entra ID matches against the assertion's
//! `x5t` / `x5t#S256` header ("Base64url-encoded SHA-1 [SHA-256] thumbprint of the X.509
//! certificate's DER encoding", MicrosoftDocs/entra-docs `identity-platform/
//! certificate-credentials.md`). Salesforce's simulator uses it too: its JWT bearer flow
//! verifies against the certificate uploaded to the External Client App.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::DecodingKey;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use x509_cert::der::Decode as _;
use x509_cert::Certificate as X509;

/// `rsaEncryption`, the only key type the simulated vendors' RS256/PS256 assertions use.
const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";

/// A parsed certificate (cheap to clone).
#[derive(Clone)]
pub struct Certificate {
    key: DecodingKey,
    /// Base64url SHA-1 of the DER: the `x5t` value.
    pub x5t: String,
    /// Base64url SHA-256 of the DER: the `x5t#S256` value.
    pub x5t_s256: String,
}

impl std::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificate")
            .field("x5t", &self.x5t)
            .finish_non_exhaustive()
    }
}

impl Certificate {
    /// Reads one PEM `CERTIFICATE` holding an RSA key.
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        let (label, der) = x509_cert::der::pem::decode_vec(pem.trim().as_bytes())
            .map_err(|e| format!("not a PEM document: {e}"))?;
        if label != "CERTIFICATE" {
            return Err(format!("PEM label is {label:?}, not CERTIFICATE"));
        }
        let cert = X509::from_der(&der).map_err(|e| format!("not an X.509 certificate: {e}"))?;
        let spki = &cert.tbs_certificate.subject_public_key_info;
        if spki.algorithm.oid.to_string() != RSA_ENCRYPTION {
            return Err("the certificate's key is not an RSA key".to_owned());
        }
        Ok(Self {
            // For rsaEncryption the BIT STRING is the PKCS#1 RSAPublicKey jsonwebtoken wants.
            key: DecodingKey::from_rsa_der(spki.subject_public_key.raw_bytes()),
            x5t: URL_SAFE_NO_PAD.encode(Sha1::digest(&der)),
            x5t_s256: URL_SAFE_NO_PAD.encode(Sha256::digest(&der)),
        })
    }

    pub fn decoding_key(&self) -> &DecodingKey {
        &self.key
    }
}

#[cfg(test)]
pub(crate) mod test_keys {
    //! The committed test-only keys (tests/fixtures/keys/README.md).
    pub const KEY_A: &str = include_str!("../../../tests/fixtures/keys/test-only-rsa-a.key.pem");
    pub const CERT_A: &str = include_str!("../../../tests/fixtures/keys/test-only-rsa-a.cert.pem");
    pub const KEY_B: &str = include_str!("../../../tests/fixtures/keys/test-only-rsa-b.key.pem");
    pub const CERT_B: &str = include_str!("../../../tests/fixtures/keys/test-only-rsa-b.cert.pem");
}

#[cfg(test)]
mod tests {
    use super::test_keys::*;
    use super::*;
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header, Validation};

    #[test]
    fn a_token_signed_with_the_matching_key_verifies_and_one_from_another_key_does_not() {
        let cert = Certificate::from_pem(CERT_A).unwrap();
        let claims = serde_json::json!({"sub": "x", "exp": 4_000_000_000u64});
        let good = encode(
            &Header::new(Algorithm::RS256),
            &claims,
            &EncodingKey::from_rsa_pem(KEY_A.as_bytes()).unwrap(),
        )
        .unwrap();
        let bad = encode(
            &Header::new(Algorithm::RS256),
            &claims,
            &EncodingKey::from_rsa_pem(KEY_B.as_bytes()).unwrap(),
        )
        .unwrap();
        let mut validation = Validation::new(Algorithm::RS256);
        validation.required_spec_claims.clear();
        assert!(
            jsonwebtoken::decode::<serde_json::Value>(&good, cert.decoding_key(), &validation)
                .is_ok()
        );
        assert!(
            jsonwebtoken::decode::<serde_json::Value>(&bad, cert.decoding_key(), &validation)
                .is_err()
        );
    }

    #[test]
    fn thumbprints_are_base64url_digests_of_the_der_and_differ_per_certificate() {
        let a = Certificate::from_pem(CERT_A).unwrap();
        let b = Certificate::from_pem(CERT_B).unwrap();
        assert_eq!(a.x5t.len(), 27); // 20 bytes
        assert_eq!(a.x5t_s256.len(), 43); // 32 bytes
        assert_ne!(a.x5t, b.x5t);
    }

    #[test]
    fn anything_but_a_certificate_is_refused() {
        assert!(Certificate::from_pem(KEY_A).is_err());
        assert!(Certificate::from_pem("garbage").is_err());
    }
}
