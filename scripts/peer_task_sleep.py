"""Peer-check task: prints its pid, then sleeps until the agent kills it (tasks.stop)."""
import os
import sys
import time

print(f"peer task: sleeping pid={os.getpid()}", flush=True)
sys.stdout.flush()
time.sleep(900)
print("peer task: woke up (should have been stopped)")
