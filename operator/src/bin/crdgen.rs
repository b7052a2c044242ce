//! Renders every CRD to `<dir>/<plural>.<group>.yaml` (default `crds/`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "crds".into()));
    std::fs::create_dir_all(&dir)?;
    for (file, crd) in recsys_operator::crd::all() {
        std::fs::write(dir.join(file), recsys_operator::crd::render(&crd)?)?;
        println!("wrote {}", dir.join(file).display());
    }
    Ok(())
}
