//! The committed CRD YAML must be exactly what the types render; run `make crds` after changing
//! a type.

use std::path::Path;

#[test]
fn committed_crds_match_the_types() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds");
    for (file, crd) in recsys_operator::crd::all() {
        let rendered = recsys_operator::crd::render(&crd).unwrap();
        let committed = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        assert!(
            committed == rendered,
            "crds/{file} is stale: run `make crds`"
        );
    }
}

#[test]
fn every_kind_has_status_columns_and_the_recsys_category() {
    for (file, crd) in recsys_operator::crd::all() {
        assert_eq!(crd.spec.group, "recsys.dev", "{file}");
        assert_eq!(
            crd.spec.names.categories.as_deref(),
            Some(&["recsys".to_owned()][..]),
            "{file}"
        );
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, "v1alpha1");
        assert!(
            version
                .subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some(),
            "{file} has no status"
        );
        assert!(
            version
                .additional_printer_columns
                .as_ref()
                .is_some_and(|c| c.len() >= 4),
            "{file}"
        );
    }
}

#[test]
fn experiment_crd_carries_cel_rules() {
    let crds = recsys_operator::crd::all();
    let yaml = recsys_operator::crd::render(&crds[2].1).unwrap();
    assert!(yaml.contains("self.control != self.treatment"));
    assert!(yaml.contains("self == oldSelf"));
}
