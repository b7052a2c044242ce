//! Renders every CRD to `<dir>/<plural>.<group>.yaml` for each directory given (default
//! `crds/`); `make crds` passes `crds` and the chart's `crds/`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut dirs: Vec<std::path::PathBuf> = std::env::args().skip(1).map(Into::into).collect();
    if dirs.is_empty() {
        dirs.push("crds".into());
    }
    for dir in dirs {
        std::fs::create_dir_all(&dir)?;
        for (file, crd) in recsys_operator::crd::all() {
            std::fs::write(dir.join(file), recsys_operator::crd::render(&crd)?)?;
            println!("wrote {}", dir.join(file).display());
        }
    }
    Ok(())
}
