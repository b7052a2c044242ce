//! LightGBM training through its C API. lightgbm3's safe `Dataset` cannot carry query groups,
//! which lambdarank needs, so datasets and the boosting loop are driven here directly; the
//! trained model comes back through its text form into lightgbm3's safe `Booster`.

use crate::error::ModelError;
use lightgbm3::Booster;
use lightgbm3_sys as sys;
use std::ffi::{c_char, c_int, c_void, CStr, CString};

/// One training or validation set: row-major features, a label per row and, for ranking
/// objectives, the sizes of consecutive query groups (they must add up to the row count).
#[derive(Debug, Clone, Copy)]
pub struct GroupedRows<'a> {
    pub features: &'a [f32],
    pub labels: &'a [f32],
    pub groups: Option<&'a [i32]>,
}

/// What the boosting loop did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoostOutcome {
    /// Trees kept: the best validation iteration, or all of them without validation.
    pub trees: usize,
    /// Validation value of the first metric at `trees`, if there was validation data.
    pub best_validation: Option<f64>,
}

fn check(code: c_int) -> Result<(), ModelError> {
    if code == 0 {
        return Ok(());
    }
    // SAFETY: LightGBM returns a pointer to a thread-local, NUL-terminated message.
    let message = unsafe { CStr::from_ptr(sys::LGBM_GetLastError()) };
    Err(ModelError::Invalid(format!(
        "lightgbm: {}",
        message.to_string_lossy()
    )))
}

fn cstring(text: &str) -> Result<CString, ModelError> {
    CString::new(text).map_err(|_| ModelError::Invalid(format!("NUL byte in {text:?}")))
}

struct DatasetHandle(sys::DatasetHandle);

impl Drop for DatasetHandle {
    fn drop(&mut self) {
        // SAFETY: the handle came from LGBM_DatasetCreateFromMat and is freed once.
        unsafe { sys::LGBM_DatasetFree(self.0) };
    }
}

struct BoosterHandle(sys::BoosterHandle);

impl Drop for BoosterHandle {
    fn drop(&mut self) {
        // SAFETY: the handle came from LGBM_BoosterCreate and is freed once.
        unsafe { sys::LGBM_BoosterFree(self.0) };
    }
}

fn validate(rows: GroupedRows<'_>, n_features: usize, what: &str) -> Result<(), ModelError> {
    if n_features == 0
        || rows.labels.is_empty()
        || rows.features.len() != rows.labels.len() * n_features
    {
        return Err(ModelError::Invalid(format!(
            "{what} data: {} values for {} labels and {n_features} features",
            rows.features.len(),
            rows.labels.len()
        )));
    }
    if let Some(groups) = rows.groups {
        let total: i64 = groups.iter().map(|&g| i64::from(g)).sum();
        if groups.iter().any(|&g| g <= 0) || total != rows.labels.len() as i64 {
            return Err(ModelError::Invalid(format!(
                "{what} data: query groups add up to {total}, not the {} rows",
                rows.labels.len()
            )));
        }
    }
    Ok(())
}

fn dataset(
    rows: GroupedRows<'_>,
    names: &[String],
    params: &CStr,
    reference: Option<&DatasetHandle>,
) -> Result<DatasetHandle, ModelError> {
    let mut handle = std::ptr::null_mut();
    let n_rows = i32::try_from(rows.labels.len())
        .map_err(|_| ModelError::Invalid("more than 2^31 rows".into()))?;
    // SAFETY: `features` holds n_rows × names.len() f32 values, row-major (checked by
    // `validate`); LightGBM copies what it needs before returning.
    check(unsafe {
        sys::LGBM_DatasetCreateFromMat(
            rows.features.as_ptr().cast::<c_void>(),
            sys::C_API_DTYPE_FLOAT32 as c_int,
            n_rows,
            names.len() as i32,
            1,
            params.as_ptr(),
            reference.map_or(std::ptr::null_mut(), |r| r.0),
            &mut handle,
        )
    })?;
    let dataset = DatasetHandle(handle);
    set_field(&dataset, c"label", rows.labels, sys::C_API_DTYPE_FLOAT32)?;
    if let Some(groups) = rows.groups {
        set_field(&dataset, c"group", groups, sys::C_API_DTYPE_INT32)?;
    }
    let names: Vec<CString> = names.iter().map(|n| cstring(n)).collect::<Result<_, _>>()?;
    let mut pointers: Vec<*const c_char> = names.iter().map(|n| n.as_ptr()).collect();
    // SAFETY: `pointers` holds names.len() valid C strings that outlive the call.
    check(unsafe {
        sys::LGBM_DatasetSetFeatureNames(dataset.0, pointers.as_mut_ptr(), pointers.len() as i32)
    })?;
    Ok(dataset)
}

fn set_field<T>(
    dataset: &DatasetHandle,
    name: &CStr,
    values: &[T],
    dtype: u32,
) -> Result<(), ModelError> {
    // SAFETY: `values` matches `dtype` (f32 or i32) and LightGBM copies it.
    check(unsafe {
        sys::LGBM_DatasetSetField(
            dataset.0,
            name.as_ptr(),
            values.as_ptr().cast::<c_void>(),
            values.len() as i32,
            dtype as c_int,
        )
    })
}

fn first_validation_metric(booster: &BoosterHandle) -> Result<Option<f64>, ModelError> {
    let mut count = 0;
    // SAFETY: plain out-parameters.
    check(unsafe { sys::LGBM_BoosterGetEvalCounts(booster.0, &mut count) })?;
    if count == 0 {
        return Ok(None);
    }
    let mut values = vec![0f64; count as usize];
    let mut written = 0;
    // SAFETY: `values` has room for every metric the booster evaluates.
    check(unsafe { sys::LGBM_BoosterGetEval(booster.0, 1, &mut written, values.as_mut_ptr()) })?;
    Ok(values.first().copied())
}

fn model_text(booster: &BoosterHandle, trees: usize) -> Result<String, ModelError> {
    let mut len: i64 = 0;
    let mut buffer = vec![0u8; 1 << 20];
    for _ in 0..2 {
        // SAFETY: LightGBM writes at most `buffer.len()` bytes and reports the full length.
        check(unsafe {
            sys::LGBM_BoosterSaveModelToString(
                booster.0,
                0,
                trees as c_int,
                sys::C_API_FEATURE_IMPORTANCE_GAIN as c_int,
                buffer.len() as i64,
                &mut len,
                buffer.as_mut_ptr().cast::<c_char>(),
            )
        })?;
        if len as usize <= buffer.len() {
            let text = CStr::from_bytes_until_nul(&buffer)
                .map_err(|_| ModelError::Invalid("unterminated LightGBM model text".into()))?;
            return Ok(text.to_string_lossy().into_owned());
        }
        buffer = vec![0u8; len as usize];
    }
    Err(ModelError::Invalid(
        "LightGBM model text kept growing".into(),
    ))
}

/// Boosts up to `iterations` trees with `params` (LightGBM `key=value` pairs). With `valid`,
/// stops after `early_stopping` rounds without improvement of the first metric (all metrics
/// used here — AUC, NDCG — are better when higher) and keeps the best iteration.
pub fn boost(
    train: GroupedRows<'_>,
    valid: Option<GroupedRows<'_>>,
    feature_names: &[String],
    params: &str,
    iterations: usize,
    early_stopping: usize,
) -> Result<(Booster, BoostOutcome), ModelError> {
    validate(train, feature_names.len(), "training")?;
    if let Some(v) = valid {
        validate(v, feature_names.len(), "validation")?;
    }
    let params = cstring(params)?;
    let train_set = dataset(train, feature_names, &params, None)?;
    let valid_set = valid
        .map(|v| dataset(v, feature_names, &params, Some(&train_set)))
        .transpose()?;
    let mut handle = std::ptr::null_mut();
    // SAFETY: the training set outlives the booster (both dropped at the end of this call,
    // booster first as it is declared later).
    check(unsafe { sys::LGBM_BoosterCreate(train_set.0, params.as_ptr(), &mut handle) })?;
    let booster = BoosterHandle(handle);
    if let Some(v) = &valid_set {
        // SAFETY: both handles are live.
        check(unsafe { sys::LGBM_BoosterAddValidData(booster.0, v.0) })?;
    }
    let mut outcome = BoostOutcome {
        trees: 0,
        best_validation: None,
    };
    let mut built = 0;
    for iteration in 1..=iterations {
        let mut finished = 0;
        // SAFETY: live booster, plain out-parameter.
        check(unsafe { sys::LGBM_BoosterUpdateOneIter(booster.0, &mut finished) })?;
        if finished != 0 {
            break;
        }
        built = iteration;
        if valid_set.is_none() {
            continue;
        }
        let Some(value) = first_validation_metric(&booster)? else {
            continue;
        };
        if outcome.best_validation.is_none_or(|best| value > best) {
            outcome = BoostOutcome {
                trees: iteration,
                best_validation: Some(value),
            };
        } else if early_stopping > 0 && iteration - outcome.trees >= early_stopping {
            break;
        }
    }
    if outcome.best_validation.is_none() {
        outcome.trees = built;
    }
    let text = model_text(&booster, outcome.trees.max(1))?;
    Ok((Booster::from_string(&text)?, outcome))
}
