// Generates the recsys.v1 client and server from proto/ at build time; the .proto files are the
// single source of truth, so nothing generated is committed that could drift.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = "../../proto";
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("recsys_v1_descriptor.bin"))
        .compile_protos(
            &[format!("{proto_root}/recsys/v1/recommender.proto")],
            &[proto_root.to_owned()],
        )?;
    println!("cargo:rerun-if-changed={proto_root}");
    Ok(())
}
