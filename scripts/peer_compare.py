"""Compares the server-side state two agents left on the same task definition, for
scripts/peer-check.sh: status, reasons, runtime keys, requirement keys and the task's own lines.

Usage: peer_compare.py URL PY_TASK_ID RS_TASK_ID PREFIX
Prints one line per check: "ok <what>" or "diff <what>: python=<..> ours=<..>".
Lines the task printed are those starting with PREFIX (the agents' own setup lines differ
legitimately: the Python agent prints its configuration dump, we print ours).
"""
import sys

from peer_api import call


def task(url, tid):
    return call(url, "tasks.get_by_id", {"task": tid})["task"]


def log_lines(url, tid):
    events = call(url, "events.get_task_log", {"task": tid, "navigate_earlier": False})["events"]
    text = "".join(e.get("msg", "") if e.get("msg", "").endswith("\n") else e.get("msg", "") + "\n"
                   for e in events)
    return text.splitlines()


def task_lines(url, tid, prefix):
    return [line for line in log_lines(url, tid) if line.startswith(prefix)]


# Setup lines both agents print, in this order (their arguments differ: ids, paths).
MARKERS = ["Executing task id [", "repository = ", "entry_point = ", "Running task id [",
           "[.]$ ", "Summary - installed python packages:", "Environment setup completed successfully",
           "Starting Task Execution:"]


def markers(url, tid):
    seen = []
    for line in log_lines(url, tid):
        for m in MARKERS:
            if line.startswith(m) and m not in seen:
                seen.append(m)
    return seen


def frozen_ok(t):
    pip = (t["script"].get("requirements") or {}).get("pip")
    return isinstance(pip, list) and "six==1.16.0" in pip


def main():
    url, py_id, rs_id, prefix = sys.argv[1:5]
    py, rs = task(url, py_id), task(url, rs_id)
    checks = [
        ("status", py.get("status"), rs.get("status")),
        ("status_reason", py.get("status_reason"), rs.get("status_reason")),
        ("status_message prefix",
         " ".join((py.get("status_message") or "").split()[:3]),
         " ".join((rs.get("status_message") or "").split()[:3])),
        ("runtime keys", sorted((py.get("runtime") or {}).keys()),
         sorted((rs.get("runtime") or {}).keys())),
        ("script.requirements keys", sorted((py["script"].get("requirements") or {}).keys()),
         sorted((rs["script"].get("requirements") or {}).keys())),
        ("frozen requirements: a list of lines pinning six==1.16.0",
         frozen_ok(py), frozen_ok(rs)),
        ("org_pip", (py["script"].get("requirements") or {}).get("org_pip"),
         (rs["script"].get("requirements") or {}).get("org_pip")),
        ("script.version_num", py["script"].get("version_num") or "",
         rs["script"].get("version_num") or ""),
        ("setup lines in order", markers(url, py_id), markers(url, rs_id)),
        ("task's own log lines", task_lines(url, py_id, prefix), task_lines(url, rs_id, prefix)),
    ]
    for what, a, b in checks:
        if a == b:
            print(f"ok {what}: {a!r}")
        else:
            print(f"diff {what}: python={a!r} ours={b!r}")


if __name__ == "__main__":
    main()
