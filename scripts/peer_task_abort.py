"""Peer-check task of stage (e): the real SDK's abort callback under our agent.

Registers a callback with Task.register_abort_callback, then waits to be stopped
(scripts/peer-check.sh stops it with tasks.stop and checks the callback ran before the end).
"""
import time

from clearml import Task

task = Task.init()


def on_abort():
    print("peer-abort: callback ran", flush=True)


task.register_abort_callback(on_abort, callback_execution_timeout=20)
print("peer-abort: registered", flush=True)
time.sleep(600)
