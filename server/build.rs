//! Compiles proto/quiver.proto with protox (a pure-Rust protobuf compiler), so a fresh machine
//! needs no protoc binary.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/quiver.proto");
    let fds = protox::compile(["quiver.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
