//! PyTorch requirements resolved as the Python agent resolves them: a `torch==X+cu118` pin on a
//! machine with CUDA 11.8 installs from the matching PyTorch index (probed, newest first), and
//! without CUDA the pin is loosened to the configured indexes. Real `execute`, real venvs and pip,
//! a real local index standing in for download.pytorch.org and PyPI (no network needed).

use serde_json::json;

use crate::context::AgentContext;
use crate::index::PackageIndex;

/// A stand-in `torch` whose module says which build it is.
fn torch_body(build: &str) -> String {
    format!("BUILD = '{build}'\n")
}

fn torch_task(ctx: &AgentContext, pin: &str) -> String {
    ctx.server
        .create_task(json!({
            "name": "torch task",
            "script": {"binary": "python3", "entry_point": "task.py", "working_dir": ".",
                "diff": "import importlib.metadata as m, torch\nprint('torch build', torch.BUILD, m.version('torch'))\n",
                "requirements": {"pip": format!("{pin}\n")}},
        }))
        .unwrap()
}

#[test]
fn a_cuda_pin_installs_from_the_matching_pytorch_index() {
    // cu121 does not exist here: the probe walks down from the configured 12.1 to cu118.
    let index = PackageIndex::builder()
        .wheel("whl/cu118", "torch", "1.99.0+cu118", &torch_body("cu118"))
        .wheel("whl/cu117", "torch", "1.99.0+cu117", &torch_body("cu117"))
        .wheel("simple", "clearml-rs-dep", "1.0", "")
        .start();
    let template = format!("http://127.0.0.1:{}/whl/cu{{}}/", index.port);
    let ctx = AgentContext::builder()
        .with_venvs()
        .env("PIP_INDEX_URL", &index.url("simple"))
        .conf(&format!(
            "agent.cuda_version: \"12.1\"\nagent.package_manager.extra_index_url_template: \"{template}\""
        ))
        .build();
    let task = torch_task(&ctx, "torch==1.99.0+cu118");
    let out = ctx.command(&["execute", "--id", &task]).output().unwrap();
    let log = ctx.server.log_text(&task).unwrap();
    assert_eq!(out.status.code(), Some(0), "{log}");
    let url = index.url("whl/cu118");
    assert!(
        log.contains(&format!(
            "PyTorch: Adding index `{url}` and installing `torch ==1.99.0.*`"
        )),
        "{log}"
    );
    assert!(log.contains("torch build cu118 1.99.0+cu118"), "{log}");

    // `pytorch_resolve: none` installs the line as written: the pin is not on any index.
    let ctx = AgentContext::builder()
        .with_venvs()
        .env("PIP_INDEX_URL", &index.url("simple"))
        .conf(&format!(
            "agent.cuda_version: \"11.8\"\nagent.package_manager.extra_index_url_template: \"{template}\"\nagent.package_manager.pytorch_resolve: none"
        ))
        .build();
    let task = torch_task(&ctx, "torch==1.99.0+cu118");
    let out = ctx.command(&["execute", "--id", &task]).output().unwrap();
    let log = ctx.server.log_text(&task).unwrap();
    assert_ne!(out.status.code(), Some(0), "{log}");
    assert!(!log.contains("PyTorch:"), "{log}");
}

#[test]
fn without_cuda_the_pin_is_loosened_to_the_configured_indexes() {
    let index = PackageIndex::builder()
        .wheel("simple", "torch", "1.99.0", &torch_body("plain"))
        .start();
    let template = format!("http://127.0.0.1:{}/whl/cu{{}}/", index.port);
    let ctx = AgentContext::builder()
        .with_venvs()
        .env("PIP_INDEX_URL", &index.url("simple"))
        .conf(&format!(
            "agent.package_manager.extra_index_url_template: \"{template}\""
        ))
        .build();
    // No GPU on this machine and `--cpu-only`: CUDA 0, no PyTorch index.
    let task = torch_task(&ctx, "torch==1.99.0+cu118");
    let out = ctx
        .command(&["execute", "--id", &task, "--cpu-only"])
        .output()
        .unwrap();
    let log = ctx.server.log_text(&task).unwrap();
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(
        log.contains("PyTorch: no wheel index found for a machine without CUDA; installing `torch ==1.99.0.*` from the configured indexes"),
        "{log}"
    );
    assert!(log.contains("torch build plain 1.99.0"), "{log}");
}

/// In docker mode the CUDA version is the image's `CUDA_VERSION` (NVIDIA's images set it), over
/// the agent's own; the index is probed from the host and pip in the container uses it.
#[test]
fn in_docker_the_images_cuda_version_picks_the_index() {
    const TAG: &str = "clearml-agent-test:cuda117";
    crate::docker::derived_image(TAG, "ENV CUDA_VERSION=11.7.1\n");
    let index = PackageIndex::builder()
        .wheel("whl/cu118", "torch", "1.99.0+cu118", &torch_body("cu118"))
        .wheel("whl/cu117", "torch", "1.99.0+cu117", &torch_body("cu117"))
        .start();
    let template = format!("http://127.0.0.1:{}/whl/cu{{}}/", index.port);
    let ctx = crate::docker::context()
        .conf(&format!(
            "agent.extra_docker_arguments: [\"--network\", \"host\"]\n\
             agent.cuda_version: \"12.1\"\n\
             agent.package_manager.extra_index_url_template: \"{template}\""
        ))
        .build();
    let task = torch_task(&ctx, "torch==1.99.0");
    let (done, log, d) = crate::docker::run_to_end(&ctx, &task, TAG);
    assert_eq!(done["status"], "completed", "{log}\n{}", d.output());
    let url = index.url("whl/cu117");
    assert!(
        log.contains(&format!(
            "PyTorch: Adding index `{url}` and installing `torch ==1.99.0.*`"
        )),
        "{log}"
    );
    assert!(log.contains("torch build cu117 1.99.0+cu117"), "{log}");
}
