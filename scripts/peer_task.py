"""Peer-check task: prints lines, attaches to its ClearML task and reports one scalar.

Run by the real clearml-agent against the Rust test server (scripts/peer-check.sh).
"""
from clearml import Task

print("peer task: hello from the task")
task = Task.init()
task.get_logger().report_scalar(title="peer_metric", series="series_a", value=42.5, iteration=3)
task.get_logger().flush(wait=True)
print("peer task: scalar reported")
