//! What the contracts' source-reading tests share: the crate's sources, parsed.

use std::path::{Path, PathBuf};

/// Whether a module is `#[cfg(test)]` (or another cfg naming `test`): its types are not the
/// contracts'.
pub(crate) fn is_test_module(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.meta
                .require_list()
                .is_ok_and(|l| l.tokens.to_string().contains("test"))
    })
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every source file of the crate, parsed.
pub(crate) fn parsed_sources() -> Vec<syn::File> {
    let mut files = Vec::new();
    sources(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f).expect("read");
            syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()))
        })
        .collect()
}
