//! Docker mode as a services deployment runs it: several tasks at once (`--services-mode`,
//! `--dynamic-gpus`), each in a container of its own; the no-GPU host falling back to CPU-only;
//! `${CLEARML_...}` templates in arguments and the container name format. Real Docker Engine,
//! real binary, the project's test server.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::context::{AgentContext, TASK_TIMEOUT};
use crate::docker::{containers, context, docker_task, image, inspect};

/// Two tasks that each wait until the other has started and `shared/release` exists: they
/// finish only when both run at once. Each writes `<name>` = its worker id, whether it is in a container, and its GPUs, into
/// `shared` (mounted at the same path in every container).
fn rendezvous_task(ctx: &AgentContext, shared: &Path, me: &str, other: &str) -> String {
    docker_task(
        ctx,
        &format!("task {me}"),
        &format!(
            "import os, time, socket\nd = {d:?}\n\
             facts = [os.environ['CLEARML_WORKER_ID'], str(os.path.exists('/.dockerenv')), \
             os.environ.get('NVIDIA_VISIBLE_DEVICES', '-'), os.environ.get('CUDA_VISIBLE_DEVICES', '-'), socket.gethostname()]\n\
             open(os.path.join(d, {me:?}), 'w').write('|'.join(facts))\n\
             print('running', flush=True)\n\
             deadline = time.time() + 120\n\
             while not (os.path.exists(os.path.join(d, {other:?})) and os.path.exists(os.path.join(d, 'release'))):\n\
             \x20   assert time.time() < deadline, 'the other task never ran beside me'\n\
             \x20   time.sleep(0.05)\n\
             print('both ran')\n",
            d = shared.display().to_string(),
        ),
        json!({}),
    )
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + TASK_TIMEOUT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn services_mode_runs_two_tasks_in_two_containers_at_once() {
    let img = image();
    let ctx = context().build();
    let shared = ctx.root().join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    let a = rendezvous_task(&ctx, &shared, "a", "b");
    let b = rendezvous_task(&ctx, &shared, "b", "a");
    for t in [&a, &b] {
        ctx.server.enqueue(t, "default").unwrap();
    }
    let volume = format!("{0}:{0}", shared.display());
    let d = ctx.daemon(&[
        "--queue",
        "default",
        "--services-mode",
        "2",
        "--docker",
        img,
        "-v",
        &volume,
    ]);
    // Both containers exist at once, each labelled with its task and with the daemon as parent
    // (a restarted daemon removes them).
    let mut seen = Vec::new();
    wait_for("two task containers at once", || {
        seen = [&a, &b]
            .iter()
            .flat_map(|t| containers("clearml-task-id", t))
            .collect();
        seen.len() == 2
    });
    let parents: Vec<String> = seen
        .iter()
        .map(|id| inspect(id)["Config"]["Labels"]["clearml-parent-worker-id"].to_string())
        .collect();
    assert_eq!(parents[0], parents[1], "{parents:?}");
    assert!(!parents[0].contains(":service:"), "{parents:?}");
    std::fs::write(shared.join("release"), "").unwrap();
    for t in [&a, &b] {
        let done = ctx.wait_status(t, &["completed", "failed"], Some(&d));
        let log = ctx.server.log_text(t).unwrap();
        assert_eq!(done["status"], "completed", "{log}\n{}", d.output());
        assert!(log.contains("both ran"), "{log}");
        assert!(log.contains("Executing: docker run"), "{log}");
    }
    for (name, task) in [("a", &a), ("b", &b)] {
        let facts = std::fs::read_to_string(shared.join(name)).unwrap();
        let facts: Vec<&str> = facts.split('|').collect();
        assert!(
            facts[0].ends_with(&format!(":service:{task}")),
            "worker id inside: {facts:?}"
        );
        assert_eq!(facts[1], "True", "not in a container: {facts:?}");
        // Services mode is CPU-only (mirrors Worker._verify_command_states).
        assert_eq!(facts[2], "none", "{facts:?}");
    }
    // Each service registered under its own worker id while it ran, and its container is gone.
    for t in [&a, &b] {
        wait_for("the task's container to be removed", || {
            containers("clearml-task-id", t).is_empty()
        });
    }
}

/// `--dynamic-gpus --docker`: each task runs in its own container on its share of the pool. The
/// host has no GPU runtime, so the device request is skipped (`CLEARML_DOCKER_SKIP_GPUS_FLAG`) and
/// the share is seen in the variables inside.
#[test]
fn dynamic_gpus_with_docker_give_each_container_its_share() {
    let img = image();
    let ctx = context().env("CLEARML_DOCKER_SKIP_GPUS_FLAG", "1").build();
    if clearml_agent::gpu::devices().is_some_and(|d| d.len() < 4) {
        eprintln!("skipped: NVML shows fewer than 4 GPUs");
        return;
    }
    let shared = ctx.root().join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    let a = rendezvous_task(&ctx, &shared, "a", "b");
    let b = rendezvous_task(&ctx, &shared, "b", "a");
    for t in [&a, &b] {
        ctx.server.enqueue(t, "dual_gpu").unwrap();
    }
    std::fs::write(shared.join("release"), "").unwrap();
    let volume = format!("{0}:{0}", shared.display());
    let d = ctx.daemon(&[
        "--gpus",
        "0-3",
        "--dynamic-gpus",
        "--queue",
        "dual_gpu=2",
        "--docker",
        img,
        "-v",
        &volume,
    ]);
    for t in [&a, &b] {
        let done = ctx.wait_status(t, &["completed", "failed"], Some(&d));
        let log = ctx.server.log_text(t).unwrap();
        assert_eq!(done["status"], "completed", "{log}\n{}", d.output());
        assert!(log.contains("both ran"), "{log}");
    }
    let mut shares: Vec<(String, String)> = ["a", "b"]
        .iter()
        .map(|n| {
            let facts = std::fs::read_to_string(shared.join(n)).unwrap();
            let facts: Vec<String> = facts.split('|').map(String::from).collect();
            assert_eq!(facts[1], "True", "not in a container: {facts:?}");
            (facts[2].clone(), facts[3].clone())
        })
        .collect();
    shares.sort();
    assert_eq!(
        shares,
        [
            ("0,1".to_string(), "0,1".to_string()),
            ("2,3".to_string(), "0,1".to_string())
        ],
        "NVIDIA_VISIBLE_DEVICES, CUDA_VISIBLE_DEVICES inside"
    );
}

/// Beyond the Python agent: `daemon --docker` without `--gpus`/`--cpu-only` on a host with no
/// GPU and no NVIDIA runtime warns once and runs its containers CPU-only, instead of failing
/// every task with "could not select device driver".
#[test]
fn no_gpu_host_without_nvidia_runtime_runs_cpu_only_after_one_warning() {
    let img = image();
    if clearml_agent::gpu::devices().is_some_and(|d| !d.is_empty())
        || crate::docker::docker(&["info", "--format", "{{json .Runtimes}}"]).contains("nvidia")
    {
        eprintln!("skipped: this host has a GPU or an NVIDIA runtime");
        return;
    }
    let ctx = context().build();
    let mk = |n: &str| {
        docker_task(
            &ctx,
            n,
            "import os\nprint('gpus', os.environ.get('NVIDIA_VISIBLE_DEVICES'))\n",
            json!({}),
        )
    };
    let tasks = [mk("one"), mk("two")];
    for t in &tasks {
        ctx.server.enqueue(t, "default").unwrap();
    }
    let d = ctx.daemon(&["--queue", "default", "--docker", img]);
    for t in &tasks {
        let done = ctx.wait_status(t, &["completed", "failed"], Some(&d));
        let log = ctx.server.log_text(t).unwrap();
        assert_eq!(done["status"], "completed", "{log}\n{}", d.output());
        assert!(log.contains("gpus none"), "{log}");
    }
    let out = d.output();
    assert_eq!(
        out.matches("containers run CPU-only").count(),
        1,
        "one warning at start:\n{out}"
    );
}

/// `${CLEARML_...}` templates in the task's and the agent's arguments get the queue, project,
/// task and worker (mirrors custom_template.py), and `agent.docker_container_name_format` names
/// the container.
#[test]
fn templates_in_arguments_and_the_container_name_format_are_resolved() {
    let img = image();
    let ctx = context()
        .conf(
            "agent.docker_container_name_format: \"clearml-{task_id}-{rand_string:.6}-{proj}\"\n\
             agent.docker_container_name_format_fields: { proj: \"hyperparams.props.short.value\" }\n\
             agent.extra_docker_arguments: [\"-e\", \"ADMIN_Q=${CLEARML_QUEUE_NAME}\"]",
        )
        .build();
    let project = ctx
        .server
        .call("projects.create", json!({"name": "Team/Vision"}))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let task = ctx
        .server
        .create_task(json!({
            "name": "templated",
            "project": project,
            "script": {"binary": "python3", "entry_point": "task.py", "working_dir": ".",
                "diff": "import os, socket\nfor k in ('ADMIN_Q', 'Q', 'P', 'T', 'K', 'W', 'KEEP'):\n    print(k, '=', os.environ.get(k))\n"},
            "hyperparams": {"props": {"short": {"section": "props", "name": "short", "value": "v1"}}},
            "container": {"image": img, "arguments":
                "-e Q=${CLEARML_QUEUE_NAME} -e P=${CLEARML_PROJECT_NAME} -e T=${CLEARML_TASK.name|capitalize} \
                 -e K=${CLEARML_TASK.hyperparams.props.short.value} -e W=${CLEARML_WORKER_ID} -e KEEP=${CLEARML_TASK.nothing:x}$${HOME}${CLEARML_NOPE}"},
        }))
        .unwrap();
    let (done, log, d) = crate::docker::run_to_end(&ctx, &task, img);
    assert_eq!(done["status"], "completed", "{log}\n{}", d.output());
    for want in [
        "ADMIN_Q = default",
        "Q = default",
        "P = Team/Vision",
        "T = Templated",
        "K = v1",
        "KEEP = x${HOME}${CLEARML_NOPE}",
    ] {
        assert!(log.contains(want), "{want} missing:\n{log}");
    }
    assert!(log.contains("W = docker-it-"), "{log}");
    let name = log
        .split("--name ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no --name in the docker run line:\n{log}"))
        .trim_matches('\'');
    let prefix = format!("clearml-{task}-");
    assert!(name.starts_with(&prefix), "{name}");
    let rand = &name[prefix.len()..];
    assert!(
        rand.len() == 9
            && rand.ends_with("-v1")
            && rand[..6].chars().all(|c| c.is_ascii_lowercase()),
        "{name}"
    );
}

/// An agent that itself runs in a container (`CLEARML_AGENT_DOCKER_HOST_MOUNT=node:pod`): the
/// task's container is a sibling on the engine host, so every folder the agent mounts is named by
/// its host path; the configuration is copied into the shared folder, and a folder outside it is
/// left out with a warning (mirrors _get_docker_cmd). Here `pod` is a link to `node`, as the
/// agent's container would see the shared folder at another path.
#[test]
fn host_mount_rewrites_every_agent_mount_to_the_host_path() {
    let img = image();
    let probe = context().build();
    let node = probe.root().join("node");
    let pod = probe.root().join("pod");
    std::fs::create_dir_all(&node).unwrap();
    std::os::unix::fs::symlink(&node, &pod).unwrap();
    let ctx = context()
        .env(
            "CLEARML_AGENT_DOCKER_HOST_MOUNT",
            &format!("{}:{}", node.display(), pod.display()),
        )
        .conf(&format!(
            "agent.docker_pip_cache: \"{}/pip-cache\"",
            pod.display()
        ))
        .build();
    let task = docker_task(
        &ctx,
        "behind a host mount",
        "import os\nprint('config', open(os.environ['CLEARML_CONFIG_FILE']).read().count('api') > 0)\n",
        json!({}),
    );
    let (done, log, d) = crate::docker::run_to_end(&ctx, &task, img);
    assert_eq!(done["status"], "completed", "{log}\n{}", d.output());
    assert!(log.contains("config True"), "{log}");
    let line = log
        .lines()
        .find(|l| l.starts_with("Executing: docker run"))
        .unwrap_or_else(|| panic!("no docker run line:\n{log}"));
    let node = node.display().to_string();
    let pod = pod.display().to_string();
    let binds: Vec<&str> = line
        .split(" -v ")
        .skip(1)
        .map(|b| b.split_whitespace().next().unwrap_or_default())
        .collect();
    assert!(
        binds.iter().any(
            |b| b.starts_with(&format!("{node}/.clearml_agent.docker-work/"))
                && b.contains(&format!(":{pod}/.clearml_agent.docker-work/"))
        ),
        "the task folder: {binds:?}"
    );
    assert!(
        binds.iter().any(|b| b.ends_with(".clearml_agent.cfg:/tmp/clearml.conf:ro")
            && b.starts_with(&node)),
        "the configuration: {binds:?}"
    );
    assert!(
        binds.contains(&format!("{node}/pip-cache:/root/.cache/pip").as_str()),
        "the pip cache: {binds:?}"
    );
    assert!(
        binds.iter().all(|b| !b.starts_with(&pod)),
        "a bind names the agent's path: {binds:?}"
    );
    assert!(
        log.contains("host mount missing, ignoring the folder") && log.contains("apt-cache"),
        "{log}"
    );
}
