//! tools/gen-docs.rs: the man page and the shell completions come from the
//! clap definition, so they name the flags lbproxy has.

use std::process::Command;

#[test]
fn gen_docs_writes_the_man_page_and_completions() {
    let dir = std::env::temp_dir().join(format!("lbproxy-gen-docs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new(env!("CARGO_BIN_EXE_gen-docs")).arg(&dir).output().expect("run gen-docs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    // roff writes a hyphen as `\-`.
    let man = read("lbproxy.1").replace("\\-", "-");
    assert!(man.contains(".TH lbproxy 1"), "not a man page: {man}");
    for flag in ["--config", "--upgrade-socket", "--admin-insecure"] {
        assert!(man.contains(flag), "the man page lacks {flag}");
    }
    assert!(read("lbproxy.bash").contains("--policy"), "the bash completion lacks --policy");
    assert!(read("_lbproxy").contains("--policy"), "the zsh completion lacks --policy");
    assert!(read("lbproxy.fish").contains("-l policy"), "the fish completion lacks --policy");
    std::fs::remove_dir_all(&dir).unwrap();
}
