//! What a RecModel may ask the operator to run, so that being allowed to create a RecModel
//! is not being allowed to run any image with any Secret of the namespace (the operator
//! would otherwise be a confused deputy). The chart sets both: image prefixes, and a label
//! every Secret a RecModel names must carry.

use crate::crd::v1alpha1::RecModel;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};

#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Image prefixes a RecModel may run (e.g. `ghcr.io/recsys/dataplane:`); empty: any.
    pub allowed_images: Vec<String>,
    /// `key=value` every referenced Secret must carry; `None`: any Secret of the namespace.
    pub secret_label: Option<(String, String)>,
}

/// Why a RecModel was refused: the condition's reason and a message naming the culprit.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub reason: &'static str,
    pub message: String,
}

impl Policy {
    /// Parses `key=value` (the chart's `secretLabel`); an empty string means no rule.
    pub fn parse_label(text: &str) -> Result<Option<(String, String)>, String> {
        if text.trim().is_empty() {
            return Ok(None);
        }
        match text.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                Ok(Some((k.trim().to_owned(), v.trim().to_owned())))
            }
            _ => Err(format!("secret label {text:?} is not key=value")),
        }
    }

    pub fn check_image(&self, image: &str) -> Result<(), Refusal> {
        if self.allowed_images.is_empty()
            || self
                .allowed_images
                .iter()
                .any(|p| image.starts_with(p.as_str()))
        {
            return Ok(());
        }
        Err(Refusal {
            reason: "ImageNotAllowed",
            message: format!(
                "image {image} is not one this operator may run (allowed: {})",
                self.allowed_images.join(", ")
            ),
        })
    }

    /// Each Secret a RecModel names must exist in its namespace and carry the label.
    pub async fn check_secrets(
        &self,
        client: &Client,
        ns: &str,
        rm: &RecModel,
    ) -> Result<Result<(), Refusal>, kube::Error> {
        self.check_secret_names(client, ns, &referenced_secrets(rm))
            .await
    }

    /// Each Secret named must exist in `ns` and carry the label. Only metadata is read: the
    /// operator never sees the values.
    pub async fn check_secret_names(
        &self,
        client: &Client,
        ns: &str,
        names: &[&str],
    ) -> Result<Result<(), Refusal>, kube::Error> {
        let Some((key, value)) = &self.secret_label else {
            return Ok(Ok(()));
        };
        let secrets = Api::<Secret>::namespaced(client.clone(), ns);
        for name in names.iter().copied() {
            let refusal = match secrets.get_metadata_opt(name).await? {
                None => Some(format!("Secret {ns}/{name} does not exist")),
                Some(meta) => {
                    let labels = meta.metadata.labels.unwrap_or_default();
                    (labels.get(key) != Some(value)).then(|| {
                        format!("Secret {ns}/{name} does not carry the label {key}={value} that marks Secrets the operator's workloads may use")
                    })
                }
            };
            if let Some(message) = refusal {
                return Ok(Err(Refusal {
                    reason: "SecretNotAllowed",
                    message,
                }));
            }
        }
        Ok(Ok(()))
    }
}

/// Every Secret a RecModel's pods would read.
pub fn referenced_secrets(rm: &RecModel) -> Vec<&str> {
    let spec = &rm.spec;
    let mut names: Vec<&str> = Vec::new();
    names.extend(spec.storage_secret_name.as_deref());
    if let Some(redis) = &spec.redis {
        names.push(&redis.url_secret_ref.name);
        names.extend(redis.password_secret_ref.as_ref().map(|r| r.name.as_str()));
    }
    names.extend(spec.auth.as_ref().map(|a| a.token_secret_name.as_str()));
    names.extend(spec.tls.as_ref().map(|t| t.secret_name.as_str()));
    names.sort_unstable();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_by_prefix_and_labels_parse() {
        let policy = Policy {
            allowed_images: vec!["ghcr.io/recsys/dataplane:".into()],
            secret_label: None,
        };
        assert!(policy.check_image("ghcr.io/recsys/dataplane:0.1.0").is_ok());
        let refused = policy
            .check_image("docker.io/evil/miner:latest")
            .unwrap_err();
        assert_eq!(refused.reason, "ImageNotAllowed");
        assert!(refused.message.contains("docker.io/evil/miner"));
        assert!(Policy::default().check_image("anything").is_ok());
        assert_eq!(
            Policy::parse_label("recsys.dev/usable=true").unwrap(),
            Some(("recsys.dev/usable".into(), "true".into()))
        );
        assert_eq!(Policy::parse_label("").unwrap(), None);
        assert!(Policy::parse_label("=x").is_err());
        assert!(Policy::parse_label("nolabel").is_err());
    }
}
