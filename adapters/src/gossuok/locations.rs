//! Where a certificate says its revocation status is published: the CRL distribution points
//! (RFC 5280 4.2.1.13) and the OCSP responders of its authorityInfoAccess (RFC 5280 4.2.2.1).
//!
//! The certificate is one whose signature chain the validator has checked, so the URLs are its
//! CA's word. Only `http` and `https` URLs are taken (no `ldap`, no `file`), at most
//! [`MAX_LOCATIONS`] of each kind, in the certificate's order. A distribution point limited to
//! some reasons or naming another CRL issuer is left out: its CRL would not be the issuer's
//! complete one, which is all [`super::Crl::parse_verified`] accepts.

use der::asn1::{Ia5String, ObjectIdentifier};
use url::Url;
use x509_cert::Certificate;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{AuthorityInfoAccessSyntax, CrlDistributionPoints};

/// id-ad-ocsp: the access method of an OCSP responder.
const ID_AD_OCSP: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1");

/// The most URLs of each kind taken from one certificate.
pub(crate) const MAX_LOCATIONS: usize = 4;

/// The URLs of the complete CRLs of `cert`'s issuer that `cert` names.
pub(crate) fn crl_distribution_points(cert: &Certificate) -> Vec<Url> {
    let Ok(Some((_, points))) = cert.tbs_certificate.get::<CrlDistributionPoints>() else {
        return Vec::new();
    };
    points
        .0
        .iter()
        .filter(|point| point.reasons.is_none() && point.crl_issuer.is_none())
        .filter_map(|point| match &point.distribution_point {
            Some(DistributionPointName::FullName(names)) => Some(names),
            _ => None,
        })
        .flatten()
        .filter_map(uri)
        .take(MAX_LOCATIONS)
        .collect()
}

/// The URLs of the OCSP responders `cert` names.
pub(crate) fn ocsp_responders(cert: &Certificate) -> Vec<Url> {
    let Ok(Some((_, access))) = cert.tbs_certificate.get::<AuthorityInfoAccessSyntax>() else {
        return Vec::new();
    };
    access
        .0
        .iter()
        .filter(|description| description.access_method == ID_AD_OCSP)
        .filter_map(|description| uri(&description.access_location))
        .take(MAX_LOCATIONS)
        .collect()
}

/// The `http` or `https` URL of a uniformResourceIdentifier name.
fn uri(name: &GeneralName) -> Option<Url> {
    match name {
        GeneralName::UniformResourceIdentifier(uri) => http_url(uri),
        _ => None,
    }
}

fn http_url(uri: &Ia5String) -> Option<Url> {
    let url = Url::parse(uri.as_str()).ok()?;
    (matches!(url.scheme(), "http" | "https") && url.host().is_some()).then_some(url)
}
