//! Every example manifest deserialises into its typed custom resource. (This checks field names
//! and types; validation against the CRDs' OpenAPI and CEL rules is a separate, later check.)

use recsys_operator::builders::training_job::check_hyper_parameters;
use recsys_operator::crd::v1alpha1::{Experiment, ItemIndex, RecModel, RetrainSchedule};
use recsys_operator::schedule::cron::Cron;
use std::path::Path;

fn read(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples/manifests")
            .join(name),
    )
    .unwrap()
}

#[test]
fn examples_parse_into_the_crd_types() {
    let rm: RecModel = serde_yaml::from_str(&read("recmodel.yaml")).unwrap();
    assert_eq!(rm.spec.canary.as_ref().map(|c| c.weight), Some(10));
    assert_eq!(rm.spec.item_index_ref, "movies-hnsw");
    let ii: ItemIndex = serde_yaml::from_str(&read("itemindex.yaml")).unwrap();
    assert_eq!(ii.spec.hnsw_m, Some(32));
    let exp: Experiment = serde_yaml::from_str(&read("experiment.yaml")).unwrap();
    assert_eq!(exp.spec.guardrails.len(), 3);
    assert_eq!(exp.spec.rec_model, "movies");
    assert!(exp.spec.guardrails[1]
        .query
        .as_deref()
        .unwrap()
        .contains("$ARM"));
    assert!(!exp.spec.guardrails[1].higher_is_better());
    let rts: RetrainSchedule = serde_yaml::from_str(&read("retrainschedule.yaml")).unwrap();
    assert_eq!(
        rts.spec.job.credentials_secret.as_deref(),
        Some("recsys-object-storage")
    );
    assert_eq!(rts.spec.time_zone.as_deref(), Some("Europe/Berlin"));
    assert_eq!(rts.spec.job.labels, "rating>=4");
    assert!(rts.spec.schedule.parse::<Cron>().is_ok());
    assert!(check_hyper_parameters(&rts.spec.job.hyper_parameters).is_ok());
}

#[test]
fn a_misspelt_enum_value_is_rejected() {
    let bad = read("itemindex.yaml").replace("type: HNSW", "type: HSNW");
    assert!(serde_yaml::from_str::<ItemIndex>(&bad).is_err());
}
