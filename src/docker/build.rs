//! `build --docker`: a task's environment built in a container of its image, as for a run, then
//! committed as a new image whose command runs the task.
//!
//! mirrors clearml_agent/commands/worker.py: Worker._build_docker (the image chosen as for a run
//! unless `--force-docker`, the default target `task_id_<id>`, the commit with an empty
//! entrypoint). The Python agent runs itself inside the container (`build --id ...
//! --install-globally`) and leaves the image without a command; here the code is prepared on the
//! host as for a run, copied into the container, the venv built there, and the image's command
//! starts the task (`docker run IMAGE` runs it, offline).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use futures_util::StreamExt;

use crate::api::Client;
use crate::exec::logs::{LogConfig, LogEvent, LogLevel, LogPipeline, LogSink, SinkError};
use crate::exec::task::ExecuteConfig;

use super::run::{ContainerJob, prepare};
use super::{DockerConfig, Engine};

/// The build's output goes to this terminal only, not to the task's log.
struct Terminal;

impl LogSink for Terminal {
    async fn send(&self, _events: &[LogEvent]) -> Result<(), SinkError> {
        Ok(())
    }
}

/// Builds task `exec.task_id` (id or name) into the image `target` (default `task_id_<id>`).
pub async fn build(
    client: &Client,
    cfg: &DockerConfig,
    exec: &ExecuteConfig,
    target: Option<String>,
    force_docker: bool,
) -> Result<()> {
    let engine = Engine::connect().await?;
    let mut cfg = cfg.clone();
    if let Some(warning) = engine
        .cpu_only_fallback(&mut cfg, crate::gpu::devices().as_deref())
        .await
    {
        println!("{warning}");
    }
    if force_docker {
        println!(
            "Ignoring any task container info, using docker image {}",
            cfg.default_image
        );
        cfg.disable_task_override = true;
    }
    let task_id = crate::exec::task::resolve_task_id(client, &exec.task_id).await?;
    let target = target
        .filter(|t| !t.trim().is_empty())
        .unwrap_or_else(|| format!("task_id_{task_id}"));
    check_image_name(&target)?;
    // The container reads no configuration while building; an empty file stands for it.
    let config = tempfile::Builder::new()
        .prefix(".clearml_agent.build.")
        .suffix(".cfg")
        .tempfile_in(&exec.temp_dir)
        .context("cannot create a temporary file")?;
    let job = ContainerJob {
        task_id: task_id.clone(),
        worker_id: exec.worker_id.clone(),
        parent_worker_id: exec.worker_id.clone(),
        config_file: config.path().to_path_buf(),
        pulled_from: None,
        worker_tags: Vec::new(),
        host_env: exec.base_env.clone(),
        build: true,
    };
    let mut log_cfg = LogConfig::new(&task_id, &exec.worker_id, exec.temp_dir.clone());
    log_cfg.echo = Some(Box::new(std::io::stdout()));
    let pipeline = LogPipeline::start(log_cfg, Arc::new(Terminal));
    let mark = crate::exec::process::new_task_mark();
    let planned = match prepare(client, &cfg, &engine, &job, &pipeline, &mark).await {
        Ok(planned) => planned,
        Err(failure) => {
            pipeline.finish(Duration::from_secs(5)).await;
            bail!("{}", failure.error);
        }
    };
    let work = planned.work.clone();
    let command = planned
        .image_command
        .clone()
        .ok_or_else(|| anyhow!("internal error: a build without an image command"))?;
    let created = engine
        .create_for(
            planned.name.as_deref(),
            planned.platform.as_deref(),
            planned.body,
        )
        .await;
    let result = match created {
        Err(e) => Err(anyhow!(e)),
        Ok(id) => {
            let outcome = run_and_commit(
                &engine,
                &id,
                &work,
                &pipeline,
                &target,
                &command,
                &planned.script_dir,
            )
            .await;
            if let Err(e) = engine.remove(&id).await {
                println!("{e}");
            }
            outcome
        }
    };
    pipeline.finish(Duration::from_secs(5)).await;
    let _ = std::fs::remove_dir_all(&work);
    let image = result?;
    println!("Committing docker container to: {target}\n{image}");
    Ok(())
}

/// Copies the code in, runs the build to its end (its output on this terminal), then commits.
async fn run_and_commit(
    engine: &Engine,
    id: &str,
    work: &Path,
    pipeline: &LogPipeline,
    target: &str,
    command: &str,
    workdir: &str,
) -> Result<String> {
    engine.upload_dir(id, work).await?;
    let mut output = engine.attach(id).await?;
    engine.start(id).await?;
    while let Some(chunk) = output.next().await {
        match chunk {
            Ok(bytes) => pipeline.push_output(bytes),
            Err(e) => {
                pipeline.push_line(LogLevel::Warning, e.to_string());
                break;
            }
        }
    }
    let code = engine.wait(id).await?;
    if code != 0 {
        bail!("building the task's environment in the container failed (exit code {code})");
    }
    println!("\nDocker build done");
    Ok(engine.commit(id, target, command, workdir).await?)
}

/// A name the engine takes for an image (`name[:tag]`, lower-case path parts): checked before
/// anything is built, with the fix in the message.
fn check_image_name(target: &str) -> Result<()> {
    let (repo, tag) = super::split_image_ref(target);
    let repo_ok = !repo.is_empty()
        && repo.split('/').all(|part| {
            !part.is_empty()
                && part.chars().all(|c| {
                    c.is_ascii_lowercase()
                        || c.is_ascii_digit()
                        || matches!(c, '.' | '_' | '-' | ':')
                })
        });
    let tag_ok = tag.is_none_or(|t| {
        !t.is_empty()
            && t.len() <= 128
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    });
    if repo_ok && tag_ok && !target.starts_with('-') {
        Ok(())
    } else {
        bail!(
            "invalid --target {target:?} for build --docker: an image name is lower-case letters, digits, '.', '_', '-' and '/' parts, with an optional :tag (e.g. my-task:v1)"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_are_checked_before_building() {
        for ok in ["task_id_abc", "my-task:v1", "localhost:5000/team/img:1.0"] {
            assert!(check_image_name(ok).is_ok(), "{ok}");
        }
        for bad in ["My-Task", "x:", "--rm", "a//b", "img:t@g"] {
            assert!(check_image_name(bad).is_err(), "{bad}");
        }
    }
}
