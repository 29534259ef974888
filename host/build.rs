//! `orizuru new` embeds `templates/` (include_dir); a file added there must
//! rebuild the binary too, not only a file changed.

fn main() {
    println!("cargo:rerun-if-changed=templates");
}
