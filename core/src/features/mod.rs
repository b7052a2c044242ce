//! The declarative feature definition and the one implementation of it that offline jobs and
//! the serving path share: aggregates per entity as of a time, context columns per request,
//! and [`assemble`], which lays them out as one model input row.

pub mod aggregate;
pub mod attributes;
pub mod context;
pub mod spec;

pub use aggregate::{Entity, FeatureEngine, FeatureTable};
pub use attributes::AttributeRows;
pub use context::{context_row, Context};
pub use spec::{FeatureSpec, SpecError};

/// Appends one row in [`FeatureSpec::vector_names`] order: the user's values, the item's, then
/// the context's. An entity the store does not know gets each feature's default.
pub fn assemble(
    spec: &FeatureSpec,
    user: Option<&[f32]>,
    item: Option<&[f32]>,
    ctx: &Context,
    out: &mut Vec<f32>,
) {
    let mut context = Vec::new();
    context_row(spec, ctx, &mut context);
    assemble_with_context(spec, user, item, &context, out);
}

/// [`assemble`] with the context's columns already laid out by [`context_row`]: all of a
/// request's candidates share one context, so it is computed once, not once per candidate.
pub fn assemble_with_context(
    spec: &FeatureSpec,
    user: Option<&[f32]>,
    item: Option<&[f32]>,
    context: &[f32],
    out: &mut Vec<f32>,
) {
    for (values, entity) in [(user, &spec.user), (item, &spec.item)] {
        match values {
            Some(v) => out.extend_from_slice(v),
            None => entity.extend_defaults(out),
        }
    }
    out.extend_from_slice(context);
}
